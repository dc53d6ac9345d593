"""Refractive index (δ, β) of a material from its chemical formula and density.

With the optional package ``periodictable`` (``pip install 'ptyscan[sim]'``, part
of ``[all]``) both parts come from its Henke tables of the atomic scattering
factors f1 and f2: :func:`refractive_index`. Without it, ``delta`` follows from
``f1 ~ Z`` (the real scattering factor far from absorption edges)::

    delta = r_e wavelength**2 n_e / (2 pi),   n_e = rho N_A sum(n_i Z_i) / sum(n_i A_i)

with ``r_e`` the classical electron radius: accurate to a few per cent for hard
X-rays well above the edges of the elements present (Si at 10 keV: 4.82e-6 against
4.89e-6 tabulated) and poor near edges; ``beta`` then needs the tables (or give
``ref_index`` yourself).
"""

from __future__ import annotations

import math
import re

from ptyscan.errors import ParameterError
from ptyscan.geometry import xray_wavelength_m

__all__ = [
    "AVOGADRO_PER_MOL",
    "CLASSICAL_ELECTRON_RADIUS_M",
    "ELEMENTS",
    "delta_from_formula",
    "electron_density_per_m3",
    "parse_formula",
    "refractive_index",
]

AVOGADRO_PER_MOL = 6.02214076e23
"""Avogadro constant in 1/mol (exact)."""

CLASSICAL_ELECTRON_RADIUS_M = 2.8179403262e-15
"""Classical electron radius in metres (CODATA 2018)."""

# fmt: off
_SYMBOLS = (
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P",
    "S", "Cl", "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn",
    "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh",
    "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd",
    "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re",
    "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th",
    "Pa", "U",
)
_MASSES = (
    1.008, 4.0026, 6.94, 9.0122, 10.81, 12.011, 14.007, 15.999, 18.998, 20.18,
    22.99, 24.305, 26.982, 28.085, 30.974, 32.06, 35.45, 39.948, 39.098, 40.078,
    44.956, 47.867, 50.942, 51.996, 54.938, 55.845, 58.933, 58.693, 63.546, 65.38,
    69.723, 72.63, 74.922, 78.971, 79.904, 83.798, 85.468, 87.62, 88.906, 91.224,
    92.906, 95.95, 98.0, 101.07, 102.91, 106.42, 107.87, 112.41, 114.82, 118.71,
    121.76, 127.6, 126.9, 131.29, 132.91, 137.33, 138.91, 140.12, 140.91, 144.24,
    145.0, 150.36, 151.96, 157.25, 158.93, 162.5, 164.93, 167.26, 168.93, 173.05,
    174.97, 178.49, 180.95, 183.84, 186.21, 190.23, 192.22, 195.08, 196.97, 200.59,
    204.38, 207.2, 208.98, 209.0, 210.0, 222.0, 223.0, 226.0, 227.0, 232.04,
    231.04, 238.03,
)
# fmt: on
ELEMENTS = {s: (z, m) for z, (s, m) in enumerate(zip(_SYMBOLS, _MASSES, strict=True), start=1)}
"""Symbol → (atomic number Z, standard atomic weight in g/mol), H to U."""

_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)|(\()|(\))(\d*\.?\d*)")


def parse_formula(formula):
    """Count atoms in a formula such as ``'H2O'``, ``'SiO2'`` or ``'Ca(OH)2'``.

    Returns
    -------
    dict of str to float
        Element symbol → number of atoms per formula unit.
    """
    if not isinstance(formula, str) or not formula.strip():
        raise ParameterError(f"formula: got {formula!r}; expected a formula such as 'SiO2'.")
    text = formula.replace(" ", "")
    stack = [{}]
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ParameterError(f"formula: cannot read {formula!r} at {text[pos:]!r}.")
        symbol, count, opening, _closing, group_count = match.groups()
        if symbol:
            if symbol not in ELEMENTS:
                raise ParameterError(f"formula: unknown element {symbol!r} in {formula!r}.")
            stack[-1][symbol] = stack[-1].get(symbol, 0.0) + float(count or 1)
        elif opening:
            stack.append({})
        else:
            if len(stack) == 1:
                raise ParameterError(f"formula: unbalanced ')' in {formula!r}.")
            group = stack.pop()
            for sym, n in group.items():
                stack[-1][sym] = stack[-1].get(sym, 0.0) + n * float(group_count or 1)
        pos = match.end()
    if len(stack) != 1:
        raise ParameterError(f"formula: unbalanced '(' in {formula!r}.")
    return stack[0]


def electron_density_per_m3(formula, *, density_g_cm3):
    """Electrons per cubic metre of a compound of the given mass density."""
    rho = float(density_g_cm3)
    if not (math.isfinite(rho) and rho > 0):
        raise ParameterError(f"density_g_cm3: got {density_g_cm3!r}; expected a positive number.")
    atoms = parse_formula(formula)
    electrons = sum(n * ELEMENTS[s][0] for s, n in atoms.items())
    mass = sum(n * ELEMENTS[s][1] for s, n in atoms.items())
    return rho * 1e6 / mass * AVOGADRO_PER_MOL * electrons


def delta_from_formula(formula, *, density_g_cm3, energy_kev):
    """Refractive-index decrement ``delta`` with ``f1 = Z`` (see the module notes).

    Parameters
    ----------
    formula : str
        Chemical formula, e.g. ``'Au'``, ``'Si3N4'``, ``'C5H8O2'``.
    density_g_cm3 : float
        Mass density in g/cm³.
    energy_kev : float
        Photon energy in keV.

    Returns
    -------
    float
        ``delta`` (dimensionless).
    """
    wavelength = float(xray_wavelength_m(energy_kev))
    n_e = electron_density_per_m3(formula, density_g_cm3=density_g_cm3)
    return CLASSICAL_ELECTRON_RADIUS_M * wavelength**2 * n_e / (2.0 * math.pi)


def refractive_index(formula, *, density_g_cm3, energy_kev):
    """``(delta, beta)`` of a compound, ``n = 1 - delta - i beta``.

    Tabulated (Henke f1, f2 through ``periodictable``) when that package is
    installed; otherwise ``delta`` from ``f1 = Z`` and ``beta`` None.

    Parameters
    ----------
    formula, density_g_cm3, energy_kev
        As :func:`delta_from_formula` (formula, g/cm³, keV).

    Returns
    -------
    (float, float or None)
    """
    parse_formula(formula)  # our validation and error messages first
    try:
        from periodictable import xsf
    except ImportError:
        return delta_from_formula(
            formula, density_g_cm3=density_g_cm3, energy_kev=energy_kev
        ), None
    n = complex(
        xsf.index_of_refraction(formula, density=float(density_g_cm3), energy=float(energy_kev))
    )
    return 1.0 - n.real, -n.imag
