"""Lens aberrations: notations, normalisation and the aberration phase χ.

The aberration function (Krivanek notation, the convention of Kirkland, abTEM
and PtyRAD) is, with ``alpha`` the scattering angle and ``phi`` its azimuth::

    chi(alpha, phi) = 2 pi / lambda * sum_{n,m} C_nm alpha**(n+1) / (n+1)
                                             * cos(m * (phi - phi_nm))

``n >= 1`` is the radial order and ``m`` the rotational symmetry, with
``m <= n + 1`` and ``n + m`` odd (C10, C12, C21, C23, C30, C32, C34, C41, ...).
Round terms (``m = 0``: C10 defocus, C30 spherical, C50) have no angle.
``C10 = -defocus``: a positive C10 is overfocus, a positive ``defocus`` is
underfocus. The probe is ``IFFT[A(k) exp(-1j chi)]`` (:mod:`.electron`).

Accepted keys (mixed freely, each term given once):

- Krivanek polar: ``C12`` (magnitude) and ``phi12`` (angle, degrees);
- Krivanek Cartesian: ``C12a``, ``C12b`` with
  ``C_nm cos(m (phi - phi_nm)) = C_nma cos(m phi) + C_nmb sin(m phi)``;
- Haider (CEOS): ``C1 A1 B2 A2 C3 S3 A3 B4 D4 A4 C5 S5 R5 A5`` with angles
  ``A1phi, B2phi, ...`` (degrees); ``B2 = C21 / 3``, ``S3 = C32 / 4``,
  ``B4 = C41 / 4``, ``D4 = C43 / 4``, ``S5 = C52 / 6``, ``R5 = C54 / 6``, the
  others equal their Krivanek term;
- aliases ``defocus`` (``C10 = -defocus``) and ``Cs`` (``C30``).

Lengths are in whatever unit the caller uses (metres here, Å where an electron
parameter says so); :func:`normalize_aberrations` never rescales lengths.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ptyscan.errors import ParameterError
from ptyscan.params import closest_name

__all__ = [
    "ALIASES",
    "HAIDER",
    "aberration_phase_rad",
    "convert_aberrations",
    "is_valid_order",
    "normalize_aberrations",
]

HAIDER = {
    "C1": ((1, 0), 1.0),
    "A1": ((1, 2), 1.0),
    "B2": ((2, 1), 3.0),
    "A2": ((2, 3), 1.0),
    "C3": ((3, 0), 1.0),
    "S3": ((3, 2), 4.0),
    "A3": ((3, 4), 1.0),
    "B4": ((4, 1), 4.0),
    "D4": ((4, 3), 4.0),
    "A4": ((4, 5), 1.0),
    "C5": ((5, 0), 1.0),
    "S5": ((5, 2), 6.0),
    "R5": ((5, 4), 6.0),
    "A5": ((5, 6), 1.0),
}
"""Haider name → ((n, m), factor) with Krivanek magnitude = factor × Haider magnitude."""

ALIASES = {"defocus": ((1, 0), -1.0), "Cs": ((3, 0), 1.0)}
"""Alias → ((n, m), factor): ``C10 = -defocus``, ``C30 = Cs``."""

_KRIVANEK = re.compile(r"^(C|phi)(\d)(\d{1,2})(a|b)?$")
_HAIDER_BY_ORDER = {nm: (name, factor) for name, (nm, factor) in HAIDER.items()}


def is_valid_order(n, m):
    """True for a Krivanek order: ``n >= 1``, ``0 <= m <= n + 1`` and ``n + m`` odd."""
    return n >= 1 and 0 <= m <= n + 1 and (n + m) % 2 == 1


def _known_keys():
    names = list(HAIDER) + [f"{h}phi" for h, ((_, m), _) in HAIDER.items() if m] + list(ALIASES)
    for n in range(1, 6):
        for m in range(n + 2):
            if is_valid_order(n, m):
                names.append(f"C{n}{m}")
                if m:
                    names += [f"phi{n}{m}", f"C{n}{m}a", f"C{n}{m}b"]
    return names


def _parse_key(key):
    """Return ``((n, m), component, factor)`` for a user key; component in mag/angle/a/b."""
    if not isinstance(key, str):
        raise ParameterError(f"aberrations: got key {key!r}; expected a string such as 'C10'.")
    if key in ALIASES:
        nm, factor = ALIASES[key]
        return nm, "mag", factor
    if key in HAIDER:
        nm, factor = HAIDER[key]
        return nm, "mag", factor
    if key.endswith("phi") and key[:-3] in HAIDER:
        nm, _ = HAIDER[key[:-3]]
        if nm[1] == 0:
            raise ParameterError(
                f"aberrations.{key}: {key[:-3]} is a round aberration (C{nm[0]}0) and has no "
                f"angle; remove {key!r}."
            )
        return nm, "angle", 1.0
    match = _KRIVANEK.match(key)
    if match is None:
        near = closest_name(key, _known_keys())
        hint = f" (did you mean '{near}'?)" if near else ""
        raise ParameterError(
            f"aberrations.{key}: unknown aberration name{hint}; expected Krivanek (C12, phi12, "
            "C12a, C12b), Haider (A1, A1phi, B2, ...) or an alias (defocus, Cs)."
        )
    kind, n, m, part = match.group(1), int(match.group(2)), int(match.group(3)), match.group(4)
    if not is_valid_order(n, m):
        raise ParameterError(
            f"aberrations.{key}: invalid aberration order n={n}, m={m}; expected n >= 1, "
            "m <= n + 1 and n + m odd (C10, C12, C21, C23, C30, C32, C34, C41, ...)."
        )
    if kind == "phi" and part:
        raise ParameterError(f"aberrations.{key}: an angle has no Cartesian part; use phi{n}{m}.")
    if m == 0 and (kind == "phi" or part):
        raise ParameterError(
            f"aberrations.{key}: C{n}0 is a round aberration and has no angle or Cartesian "
            f"part; give C{n}0 alone."
        )
    if kind == "phi":
        return (n, m), "angle", 1.0
    return (n, m), part or "mag", 1.0


def _finite(key, value):
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)):
        raise ParameterError(f"aberrations.{key}: got {value!r}; expected a finite number.")
    return float(value)


def normalize_aberrations(values):
    """Normalise aberrations given in any notation to Krivanek polar form.

    Parameters
    ----------
    values : mapping of str to float, or None
        Aberration coefficients (lengths in one unit of the caller's choice,
        angles in degrees), in any mix of the notations of the module notes.

    Returns
    -------
    dict of str to float
        ``{"C10": ..., "C12": ..., "phi12": ..., ...}`` ordered by (n, m);
        every non-round term has its angle (0 when not given), angles in
        degrees in ``[0, 360 / m)``.

    Raises
    ------
    ParameterError
        Unknown names (with the closest valid name), invalid orders, an angle
        or Cartesian part on a round term, a term given twice (e.g. ``C10``
        and ``defocus``, or ``C12`` and ``C12a``), an angle without its
        magnitude, or a non-finite value.
    """
    staged = {}
    for key, value in dict(values or {}).items():
        nm, part, factor = _parse_key(key)
        number = _finite(key, value) * factor
        given = staged.setdefault(nm, {})
        if part in given:
            raise ParameterError(
                f"aberrations.{key}: {_describe(nm, part)} is already given by "
                f"{given[part][0]!r}; give each term once."
            )
        given[part] = (key, number)
    out = {}
    for nm in sorted(staged):
        out.update(_polar(nm, staged[nm]))
    return out


def _describe(nm, part):
    n, m = nm
    return {"mag": f"C{n}{m}", "angle": f"phi{n}{m}", "a": f"C{n}{m}a", "b": f"C{n}{m}b"}[part]


def _polar(nm, given):
    n, m = nm
    keys = ", ".join(repr(k) for k, _ in given.values())
    polar, cartesian = {"mag", "angle"} & set(given), {"a", "b"} & set(given)
    if polar and cartesian:
        raise ParameterError(
            f"aberrations: C{n}{m} is given both in polar and Cartesian form ({keys}); "
            "use one form per term."
        )
    if m == 0:
        return {f"C{n}0": given["mag"][1]}
    if cartesian:
        a = given.get("a", ("", 0.0))[1]
        b = given.get("b", ("", 0.0))[1]
        magnitude, angle = math.hypot(a, b), math.degrees(math.atan2(b, a)) / m
    else:
        if "mag" not in given:
            raise ParameterError(
                f"aberrations.{given['angle'][0]}: an angle without its magnitude C{n}{m} "
                f"(or its Haider/Cartesian equivalent); give C{n}{m} too."
            )
        magnitude, angle = given["mag"][1], given.get("angle", ("", 0.0))[1]
    if magnitude < 0:  # a negative magnitude is the same term turned by 180/m degrees
        magnitude, angle = -magnitude, angle + 180.0 / m
    return {f"C{n}{m}": magnitude, f"phi{n}{m}": angle % (360.0 / m)}


def _terms(normalized):
    """Yield ((n, m), magnitude, angle_deg) from a Krivanek polar dict."""
    for key, value in normalized.items():
        if key.startswith("C"):
            n, m = int(key[1]), int(key[2:])
            yield (n, m), value, normalized.get(f"phi{n}{m}", 0.0)


def convert_aberrations(values, *, to="krivanek"):
    """Express aberrations in another notation.

    Parameters
    ----------
    values : mapping of str to float
        Aberrations in any notation (see :func:`normalize_aberrations`).
    to : {'krivanek', 'cartesian', 'haider'}
        Krivanek polar (``C12``, ``phi12``), Krivanek Cartesian (``C12a``,
        ``C12b``; round terms stay ``C10``) or Haider (``A1``, ``A1phi``).

    Returns
    -------
    dict of str to float

    Raises
    ------
    ParameterError
        Unknown target, or a term with no Haider name (n > 5) for 'haider'.
    """
    normalized = normalize_aberrations(values)
    if to == "krivanek":
        return normalized
    out = {}
    for (n, m), magnitude, angle in _terms(normalized):
        if to == "cartesian":
            if m == 0:
                out[f"C{n}0"] = magnitude
            else:
                out[f"C{n}{m}a"] = magnitude * math.cos(math.radians(m * angle))
                out[f"C{n}{m}b"] = magnitude * math.sin(math.radians(m * angle))
        elif to == "haider":
            if (n, m) not in _HAIDER_BY_ORDER:
                raise ParameterError(f"aberrations: C{n}{m} has no Haider name (orders up to 5).")
            name, factor = _HAIDER_BY_ORDER[(n, m)]
            out[name] = magnitude / factor
            if m:
                out[f"{name}phi"] = angle
        else:
            raise ParameterError(f"to: got {to!r}; expected 'krivanek', 'cartesian' or 'haider'.")
    return out


def aberration_phase_rad(alpha_y, alpha_x, *, wavelength_m, aberrations):
    """The aberration phase χ on a grid of scattering angles.

    Parameters
    ----------
    alpha_y, alpha_x : array_like of float
        Scattering angle components in radians (``alpha = lambda * k``),
        broadcastable; the azimuth is ``atan2(alpha_y, alpha_x)``.
    wavelength_m : float
        Wavelength in metres, > 0.
    aberrations : mapping of str to float
        Coefficients with lengths in metres, angles in degrees, any notation.

    Returns
    -------
    ndarray of float64
        χ in radians, the broadcast shape of the inputs.
    """
    if not (isinstance(wavelength_m, (int, float)) and wavelength_m > 0):
        raise ParameterError(f"wavelength_m: got {wavelength_m!r}; expected a positive number.")
    ay, ax = np.broadcast_arrays(np.asarray(alpha_y, float), np.asarray(alpha_x, float))
    alpha = np.hypot(ay, ax)
    phi = np.arctan2(ay, ax)
    chi = np.zeros(alpha.shape)
    for (n, m), magnitude, angle in _terms(normalize_aberrations(aberrations)):
        term = magnitude * alpha ** (n + 1) / (n + 1)
        if m:
            term = term * np.cos(m * (phi - math.radians(angle)))
        chi += term
    return chi * (2.0 * math.pi / float(wavelength_m))
