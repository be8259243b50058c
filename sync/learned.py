"""What `alegra-sync doctor` learned about one company's Alegra, as the payload builders use it.

Two guesses may be replaced per company when the company's own data shows one clear alternative
(sync/doctor.py decides that): the identification type code of each kind of tax id, and the
field a bill's NCF is written to. Stored as named settings (sync/store/doctor.py); this module
turns them into a `WriteShape`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sync.alegra.payloads import IDENTIFICATION_TYPES, NCF_FIELD

ID_TYPE_SETTING = "identification_type.{kind}"  # kind: RNC | CEDULA (sync.dominican.TaxId.kind)
NCF_SETTING = "ncf_field"
# The places a bill's NCF may be written to (dotted paths), as `doctor.ncf_places` reads them.
NCF_PLACES = ("numberTemplate.number", "numberTemplate.fullNumber", "numberTemplate.billNumber",
              "billNumber", "number")


@dataclass(frozen=True)
class WriteShape:
    """How the service writes one company's contacts and bills. `learned`: the settings that
    replace a built-in guess, name → value (empty: the built-in guesses)."""

    id_types: Mapping[str, str] = field(default_factory=lambda: dict(IDENTIFICATION_TYPES))
    ncf_field: tuple[str, ...] = NCF_FIELD
    learned: Mapping[str, str] = field(default_factory=dict)


BUILT_IN = WriteShape()


def known_setting(name: str, value: str) -> bool:
    """Whether a stored setting is one this version reads (others are ignored, not guessed)."""
    if name == NCF_SETTING:
        return value in NCF_PLACES
    kinds = {ID_TYPE_SETTING.format(kind=kind) for kind in IDENTIFICATION_TYPES}
    return name in kinds and bool(value.strip())


def write_shape(settings: Mapping[str, str]) -> WriteShape:
    """The shape the stored settings give (unknown names and values are left out)."""
    usable = {name: value for name, value in settings.items() if known_setting(name, value)}
    if not usable:
        return BUILT_IN
    id_types = {kind: usable.get(ID_TYPE_SETTING.format(kind=kind), code)
                for kind, code in IDENTIFICATION_TYPES.items()}
    ncf = tuple(usable[NCF_SETTING].split(".")) if NCF_SETTING in usable else NCF_FIELD
    return WriteShape(id_types, ncf, usable)
