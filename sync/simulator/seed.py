"""Seed data: a Dominican chart of accounts, the ITBIS taxes, and realistic bulk contacts (pure)."""

from __future__ import annotations

import random
from typing import Any

from stdnum import luhn
from stdnum.do import cedula, rnc

Tree = tuple[str, tuple[Any, ...]]

# (type, nature, tree). Summary accounts have children; documents post to the leaves.
CHART: tuple[tuple[str, str, Tree], ...] = (
    ("asset", "debit", ("Activos", (
        ("Activos corrientes", (
            ("Efectivo y equivalentes de efectivo", (("Caja general", ()), ("Caja chica", ()),
                                                     ("Bancos", ()))),
            ("Cuentas por cobrar clientes", ()),
            ("ITBIS pagado en compras", ()),
            ("Inventarios", ()),
        )),
        ("Activos no corrientes", (
            ("Propiedad, planta y equipo", (("Mobiliario y equipos de oficina", ()),
                                            ("Equipos de transporte", ()),
                                            ("Equipos de cómputo", ()))),
        )),
    ))),
    ("liability", "credit", ("Pasivos", (
        ("Pasivos corrientes", (
            ("Cuentas por pagar proveedores", ()),
            ("ITBIS por pagar", ()),
            ("Retenciones por pagar", ()),
        )),
        ("Pasivos no corrientes", (("Préstamos bancarios a largo plazo", ()),)),
    ))),
    ("equity", "credit", ("Patrimonio", (
        ("Capital social", ()), ("Utilidades retenidas", ()), ("Resultado del ejercicio", ()),
    ))),
    ("income", "credit", ("Ingresos", (
        ("Ingresos operacionales", (("Ventas de bienes", ()), ("Ventas de servicios", ()))),
        ("Otros ingresos", (("Ingresos financieros", ()),)),
    ))),
    ("cost", "debit", ("Costos", (
        ("Costo de ventas", (("Costo de mercancía vendida", ()),)),
    ))),
    ("expense", "debit", ("Gastos", (
        ("Gastos generales", (
            ("Combustible y lubricantes", ()), ("Papelería y útiles de oficina", ()),
            ("Servicios públicos", ()), ("Alquileres", ()),
            ("Mantenimiento y reparaciones", ()), ("Teléfono e internet", ()),
            ("Seguros", ()), ("Viáticos y gastos de viaje", ()),
            ("Honorarios profesionales", ()), ("Publicidad y mercadeo", ()),
            ("Limpieza y aseo", ()), ("Cargos bancarios", ()),
            ("Gastos de representación", ()),
        )),
        ("Gastos de personal", (
            ("Sueldos y salarios", ()), ("Aportes a la seguridad social", ()),
        )),
        ("Gastos financieros", (("Intereses bancarios", ()),)),
    ))),
)
# One inactive leaf, as real charts have.
INACTIVE_ACCOUNTS = frozenset({"Gastos de representación"})


def chart_of_accounts() -> list[dict[str, Any]]:
    """Every account as a plain node (no `children`), ids "1", "2", … in depth-first order."""
    nodes: list[dict[str, Any]] = []
    for index, (kind, nature, tree) in enumerate(CHART, start=1):
        _walk(tree, nodes, parent=None, code=str(index), kind=kind, nature=nature)
    return nodes


def _walk(tree: Tree, nodes: list[dict[str, Any]], *, parent: str | None, code: str, kind: str,
          nature: str) -> None:
    name, children = tree
    node_id = str(len(nodes) + 1)
    nodes.append({
        "id": node_id, "idParent": parent, "name": name, "code": code, "description": "",
        "type": kind, "nature": nature,
        "status": "inactive" if name in INACTIVE_ACCOUNTS else "active",
        "readOnly": parent is None,
    })
    for index, child in enumerate(children, start=1):
        _walk(child, nodes, parent=node_id, code=f"{code}.{index:02d}", kind=kind, nature=nature)


def taxes() -> list[dict[str, Any]]:
    """The taxes of a Dominican company: ITBIS 18 %, ITBIS 16 % (reduced), exempt."""
    return [
        {"id": "1", "name": "ITBIS", "percentage": 18, "type": "ITBIS", "status": "active",
         "description": "Impuesto sobre la transferencia de bienes y servicios"},
        {"id": "2", "name": "ITBIS 16%", "percentage": 16, "type": "ITBIS", "status": "active",
         "description": "ITBIS tasa reducida"},
        {"id": "3", "name": "Exento", "percentage": 0, "type": "EXENTO", "status": "active",
         "description": "Exento de ITBIS"},
    ]


_TRADES = ("Ferretería", "Distribuidora", "Comercial", "Inversiones", "Farmacia", "Supermercado",
           "Colmado", "Servicios", "Constructora", "Transporte", "Importadora", "Repuestos",
           "Agroindustrial", "Papelería", "Lavandería", "Panadería", "Taller")
_SURNAMES = ("Ochoa", "Rodríguez", "Pérez", "Martínez", "Peña", "Almonte", "Báez", "Guzmán",
             "Núñez", "Castillo", "Santana", "De la Cruz", "Jiménez", "Reyes", "Tavárez",
             "Fernández", "Mejía", "Polanco", "Rosario", "Vásquez", "Del Orbe")
_GIVEN = ("Juan", "María", "José", "Ana", "Luis", "Carmen", "Pedro", "Rosa", "Rafael", "Yolanda",
          "Miguel", "Altagracia", "Francisco", "Mercedes", "Ramón")
_SUFFIXES = ("SRL", "S.R.L.", "SA", "S.A.", "EIRL", "", "C. por A.")
_CITIES = ("Santo Domingo", "Santiago", "La Romana", "San Pedro de Macorís", "Puerto Plata",
           "La Vega", "Higüey", "San Francisco de Macorís")


def seed_contact_fields(index: int) -> dict[str, Any]:
    """The fields a person would have typed for the `index`-th bulk contact (deterministic).

    One in four is a person with a cédula, the rest companies with an RNC; one in five has its
    identification typed with dashes; one in six is a client only, one in ten both.
    """
    rng = random.Random(index)
    person = index % 4 == 3
    number = _cedula(index) if person else _rnc(index)
    dashed = index % 5 == 4
    typed = (cedula.format(number) if person else rnc.format(number)) if dashed else number
    kinds = ["client"] if index % 6 == 5 else ["client", "provider"] if index % 10 == 0 else [
        "provider"]
    return {
        "name": _person_name(rng) if person else _company_name(rng),
        "identification": typed,
        "identificationType": "CED" if person else "RNC",
        "kindOfPerson": "PERSON_ENTITY" if person else "LEGAL_ENTITY",
        "type": kinds,
        "email": f"contacto{index}@example.com.do",
        "address": {"address": f"Calle {rng.randint(1, 80)} #{rng.randint(1, 300)}",
                    "city": rng.choice(_CITIES), "country": "República Dominicana"},
    }


def _company_name(rng: random.Random) -> str:
    parts = [rng.choice(_TRADES), rng.choice(_SURNAMES)]
    if rng.random() < 0.4:
        parts.append(rng.choice(("& Asociados", "del Caribe", "Dominicana", "Hermanos")))
    suffix = rng.choice(_SUFFIXES)
    return " ".join(parts) + (f", {suffix}" if suffix else "")


def _person_name(rng: random.Random) -> str:
    return f"{rng.choice(_GIVEN)} {rng.choice(_SURNAMES)} {rng.choice(_SURNAMES)}"


def _rnc(index: int) -> str:
    # A multiplier coprime with 10**6 spreads the bases: unique for the first million contacts.
    base = f"13{(100_000 + index * 7_919) % 1_000_000:06d}"
    return base + rnc.calc_check_digit(base)


def _cedula(index: int) -> str:
    base = f"402{(2_000_000 + index * 7_919) % 10_000_000:07d}"
    return base + luhn.calc_check_digit(base)

