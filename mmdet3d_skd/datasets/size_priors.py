"""Class size priors (mean length, height, width in metres) for data sets without 3D labels.

The weak 3D losses and the head need one mean box size per class (``dims_prior``): the only
3D knowledge weak training is allowed, as configuration. For a user's own classes the
converter (:mod:`.coco_convert`) looks each class name up here; a config or the command line
can give or override any of them (``overrides``).

Sources, (l, h, w) metres:

* ``'kitti'``: Pedestrian, Cyclist, Car are the project's KITTI means
  (:data:`.kitti_format.KITTI_SIZE_PRIORS`, the values of MonoDLE / SMOKE, means
  of KITTI's 3D object training labels); Van, Truck, Person_sitting, Tram are the means of the
  same labels as tabulated (h, w, l) in the ``dims_avg`` table that the public Deep3DBox code
  (Mousavian et al., "3D Bounding Box Estimation Using Deep Learning and Geometry", CVPR 2017)
  and its re-implementations carry.
* ``'nuscenes'``: the per-class mean sizes of the nuScenes training set that mmdet3d 1.4 uses as
  anchor sizes in ``configs/ssn/ssn_hv_secfpn_sbn-all_16xb2-2x_nus-3d.py`` (given there as
  l, w, h), rounded to centimetres.

Lookup (:func:`lookup_size_prior`), table by table (KITTI first): the exact name, then the
name normalised (lower case, spaces and hyphens to ``_``) or through :data:`ALIASES` (e.g.
COCO's ``person`` -> ``pedestrian``). ``car`` thus finds KITTI's ``Car``
(3.88 m long) before nuScenes' ``car`` (4.61 m): pass ``tables=('nuscenes', 'kitti')`` for
the other order, or give the size.
"""
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .kitti_format import KITTI_SIZE_PRIORS

Size = Tuple[float, float, float]

_KITTI_3 = dict(KITTI_SIZE_PRIORS)

#: (l, h, w) metres per class name, per source table (see the module docstring).
SIZE_PRIORS: Dict[str, Dict[str, Size]] = {
    'kitti': {
        **_KITTI_3,
        'Van': (5.08, 2.19, 1.91),
        'Truck': (11.17, 3.07, 2.63),
        'Person_sitting': (0.97, 1.29, 0.54),
        'Tram': (18.61, 3.56, 2.40),
    },
    'nuscenes': {
        'car': (4.61, 1.72, 1.95),
        'truck': (6.74, 2.73, 2.46),
        'trailer': (12.01, 3.82, 2.87),
        'bus': (11.19, 3.47, 2.94),
        'construction_vehicle': (6.38, 3.13, 2.73),
        'bicycle': (1.68, 1.27, 0.60),
        'motorcycle': (2.10, 1.44, 0.76),
        'pedestrian': (0.73, 1.76, 0.66),
        'traffic_cone': (0.40, 1.06, 0.40),
        'barrier': (0.49, 0.98, 2.49),
    },
}

#: Other common spellings (normalised) -> a normalised name of the tables.
ALIASES = {'person': 'pedestrian', 'people': 'pedestrian', 'walker': 'pedestrian',
           'bike': 'bicycle', 'motorbike': 'motorcycle', 'cone': 'traffic_cone',
           'rider': 'cyclist'}

DEFAULT_TABLES = ('kitti', 'nuscenes')


class MissingSizePriorError(ValueError):
    """A class has no size prior in the tables and none was given."""


def _norm(name: str) -> str:
    return name.strip().lower().replace(' ', '_').replace('-', '_')


def lookup_size_prior(name: str, tables: Sequence[str] = DEFAULT_TABLES
                      ) -> Optional[Tuple[Size, str]]:
    """``((l, h, w), 'table:Name')`` of ``name`` from the tables, or None (see the module
    docstring for the order)."""
    keys = [_norm(name)]
    if keys[0] in ALIASES:
        keys.append(ALIASES[keys[0]])
    for t in tables:
        if name in SIZE_PRIORS[t]:
            return SIZE_PRIORS[t][name], f'{t}:{name}'
        for key in keys:
            for k, v in SIZE_PRIORS[t].items():
                if _norm(k) == key:
                    return v, f'{t}:{k}'
    return None


def _check_size(name: str, size: Iterable[float]) -> Size:
    try:
        vals = tuple(float(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f'size prior of class {name!r}: {size!r} is not three numbers '
                         '(l, h, w in metres)') from None
    if len(vals) != 3 or not all(v > 0 and v < 1e3 for v in vals):
        raise ValueError(f'size prior of class {name!r}: {size!r} must be three positive '
                         'numbers (l, h, w in metres)')
    return vals


def resolve_size_priors(class_names: Sequence[str],
                        overrides: Optional[Mapping[str, Iterable[float]]] = None,
                        tables: Sequence[str] = DEFAULT_TABLES
                        ) -> Tuple[List[Size], List[str]]:
    """``(priors, sources)`` for ``class_names`` in order: ``overrides[name]`` (source
    ``'given'``) else :func:`lookup_size_prior`. Raises :class:`MissingSizePriorError` listing
    every class without a prior; ValueError for a malformed override."""
    overrides = dict(overrides or {})
    unknown = [t for t in tables if t not in SIZE_PRIORS]
    if unknown:
        raise ValueError(f'unknown size-prior table(s) {unknown}; known: {sorted(SIZE_PRIORS)}')
    stray = sorted(set(overrides) - set(class_names))
    if stray:
        raise ValueError(f'size priors given for {stray}, which are not among the classes '
                         f'{list(class_names)}')
    priors, sources, missing = [], [], []
    for name in class_names:
        if name in overrides:
            priors.append(_check_size(name, overrides[name]))
            sources.append('given')
            continue
        found = lookup_size_prior(name, tables)
        if found is None:
            missing.append(name)
            continue
        priors.append(found[0])
        sources.append(found[1])
    if missing:
        raise MissingSizePriorError(
            f'no size prior for class(es) {missing}: not in the tables {list(tables)} '
            '(mmdet3d_skd/datasets/size_priors.py); give their mean size, e.g. '
            f'--prior "{missing[0]}=4.0,1.5,1.7" (l,h,w metres)')
    return priors, sources


__all__ = ['SIZE_PRIORS', 'ALIASES', 'DEFAULT_TABLES', 'MissingSizePriorError',
           'lookup_size_prior', 'resolve_size_priors']
