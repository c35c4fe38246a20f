"""A small typed hyperparameter container, replacing the removed `tf.contrib.training.HParams`.

Each hparam's type is fixed by its default value (int, float, bool, str, or a list of one of
those). `parse("a=1,b=[x,y]")` follows contrib's string grammar:

* clauses separated by commas: `name=value` or `name=[v1,v2,...]` (`name[i]=value` sets one
  element of a list hparam);
* a scalar runs to the next comma; a list runs to the first `]` and is split on commas and
  spaces, empty pieces dropped;
* text is converted with the default's type: `int("1.5")` fails, bools accept
  true/True/false/False/1/0.

    >>> hp = HParams(target_sparsity=0.5, weight_sparsity_map=[""])
    >>> hp.parse("target_sparsity=0.9,weight_sparsity_map=[conv1:0.8,fc:0.5]").target_sparsity
    0.9
"""

import json
import re

_NAME = r"[A-Za-z][\w.]*"
_CLAUSE = re.compile(
    rf"\s*(?P<name>{_NAME})(?:\[\s*(?P<index>\d+)\s*\])?\s*=\s*"
    r"(?:\[(?P<list>[^\]]*)\]|(?P<scalar>[^,\[\]]*))\s*(?:,|$)"
)
_SCALAR_TYPES = (bool, int, float, str)


def _parse_bool(text):
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if text in ("1", "0"):
        return text == "1"
    raise ValueError("expected true, false, True, False, 1 or 0")


def _convert_text(name, text, value_type):
    """Converts one piece of parse text to `value_type`, naming the hparam on failure."""
    try:
        if value_type is bool:
            return _parse_bool(text)
        if value_type is str:
            return text
        return value_type(text)
    except ValueError:
        raise ValueError(
            f"Could not parse hparam '{name}': {text!r} is not a valid {value_type.__name__}"
        ) from None


class HParams:
    """Named hyperparameters with fixed types, settable as attributes and parsable from a string."""

    def __init__(self, **defaults):
        object.__setattr__(self, "_types", {})
        for name, value in defaults.items():
            self.add_hparam(name, value)

    def add_hparam(self, name, value):
        """Declares a new hparam; its type is taken from `value`."""
        if name in self._types:
            raise ValueError(f"Hparam '{name}' already exists")
        if not re.fullmatch(_NAME, name) or name.startswith("_"):
            raise ValueError(f"Invalid hparam name {name!r}: use letters, digits and '_'")
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"Hparam '{name}': a list default needs one element to give its type")
            element_type = type(value[0])
            self._types[name] = (element_type, True)
            value = list(value)
        else:
            self._types[name] = (type(value), False)
        object.__setattr__(self, name, value)

    def _type_of(self, name):
        if name not in self._types:
            raise ValueError(
                f"Unknown hparam '{name}'. Known hparams: {', '.join(sorted(self._types))}"
            )
        return self._types[name]

    def _checked(self, name, value):
        """Returns `value` cast to `name`'s type, refusing lossy or cross-kind casts."""
        value_type, is_list = self._type_of(name)
        if is_list != isinstance(value, (list, tuple)):
            kind = "a list" if is_list else "a single value"
            raise ValueError(f"Hparam '{name}' takes {kind}, got {value!r}")
        items = list(value) if is_list else [value]
        cast = []
        for item in items:
            if value_type is float and isinstance(item, int) and not isinstance(item, bool):
                item = float(item)
            elif value_type is bool and isinstance(item, bool):
                pass
            elif not isinstance(item, value_type) or isinstance(item, bool) != (value_type is bool):
                raise ValueError(
                    f"Hparam '{name}' is of type {value_type.__name__}, got {item!r}"
                )
            cast.append(item)
        return cast if is_list else cast[0]

    def __setattr__(self, name, value):
        object.__setattr__(self, name, self._checked(name, value))

    def set_hparam(self, name, value):
        """Sets an existing hparam, checking its type."""
        setattr(self, name, value)

    def get(self, name, default=None):
        return getattr(self, name) if name in self._types else default

    def __contains__(self, name):
        return name in self._types

    def parse(self, text):
        """Sets hparams from a `name=value,name=[a,b]` string; returns self."""
        updates = {}
        position = 0
        text = text or ""
        while position < len(text.rstrip()):
            match = _CLAUSE.match(text, position)
            if not match or match.end() == position:
                raise ValueError(
                    f"Could not parse hparams at {text[position:]!r}: expected name=value or "
                    "name=[v1,v2] separated by commas"
                )
            position = match.end()
            name = match.group("name")
            value_type, is_list = self._type_of(name)
            key = (name, match.group("index"))
            if key in updates or (name, None) in updates:
                raise ValueError(f"Hparam '{name}' is set more than once in {text!r}")
            if match.group("list") is not None:
                if not is_list or match.group("index") is not None:
                    raise ValueError(
                        f"Hparam '{name}' takes a single value, got the list [{match.group('list')}]"
                    )
                pieces = [p for p in re.split(r"[,\s]", match.group("list")) if p]
                updates[key] = [_convert_text(name, p, value_type) for p in pieces]
            else:
                scalar = match.group("scalar").strip()
                if is_list and match.group("index") is None:
                    raise ValueError(
                        f"Hparam '{name}' takes a list such as {name}=[a,b], got {scalar!r}"
                    )
                updates[key] = _convert_text(name, scalar, value_type)
        for (name, index), value in updates.items():
            if index is None:
                setattr(self, name, value)
            else:
                elements = list(getattr(self, name))
                if int(index) >= len(elements):
                    raise ValueError(
                        f"Index {index} out of range for hparam '{name}' of length {len(elements)}"
                    )
                elements[int(index)] = value
                setattr(self, name, elements)
        return self

    def values(self):
        """Returns a dict of hparam names to values."""
        return {name: getattr(self, name) for name in self._types}

    def to_json(self, **kwargs):
        return json.dumps(self.values(), **kwargs)

    def __repr__(self):
        return f"HParams({self.values()!r})"
