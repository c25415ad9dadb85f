"""Rotated BEV IoU on the CPU: mmdet3d's numba CUDA kernel ported to ``numba.njit``.

mmdet3d 1.4.0's KITTI evaluation computes the BEV and 3D overlaps with
``mmdet3d.evaluation.functional.kitti_utils.rotate_iou.rotate_iou_gpu_eval``,
a ``numba.cuda`` kernel: without a CUDA device (and toolkit) it raises
``CudaSupportError`` (mmdet3d issue #2817), and its simulator
(``NUMBA_ENABLE_CUDASIM=1``) is pure Python and slow. mmdet3d, mmdet, mmengine and
mmcv have no CPU equivalent with the same arithmetic (mmcv's ``box_iou_rotated``
uses another polygon clipper and counter-clockwise angles), so the kernel's device
functions are ported here one for one: the same float32 scalars and local
arrays, the same operations in the same order, the same type promotions (numba types
the CPU and CUDA code with the same rules), hence the same IoUs to float32
precision. Only the thread layout changes: a loop over the boxes (a ``prange`` from
``PARALLEL_MIN_PAIRS`` box pairs on) instead of one CUDA thread per box, with
scratch arrays in place of the kernel's ``cuda.local`` ones.

Box format: ``(x, y, dx, dy, angle)`` in the BEV of the camera frame, the angle
turning clockwise. For boxes ``b`` and query boxes ``q`` with intersection area
``I``::

    iou[n, k] = I / (area(q_k) + area(b_n) - I)      criterion == -1
    iou[n, k] = I / area(q_k)                         criterion == 0
    iou[n, k] = I / area(b_n)                         criterion == 1
    iou[n, k] = I                                     any other criterion

(criterion 0 and 1 as the CUDA kernel computes them, which calls the device
function with the query box first; its docstring states them the other way round).
"""
import math

import numba
import numpy as np

__all__ = ['rotate_iou_cpu_eval']

# error_model='numpy': float division by zero gives inf/nan as in CUDA instead of
# raising ZeroDivisionError (Python semantics, numba's default on the CPU).
_JIT = dict(nopython=True, nogil=True, cache=True, error_model='numpy')
# device functions: inlined into the caller as in the CUDA kernel (inline=True
# there); lets numba drop the reference counting of the many small array views,
# about 10x faster than separate calls, same results bit for bit
_DEVICE = dict(inline='always', **_JIT)


@numba.jit(**_DEVICE)
def _trangle_area(a, b, c):
    return ((a[0] - c[0]) * (b[1] - c[1]) - (a[1] - c[1]) *
            (b[0] - c[0])) / 2.0


@numba.jit(**_DEVICE)
def _area(int_pts, num_of_inter):
    area_val = 0.0
    for i in range(num_of_inter - 2):
        area_val += abs(
            _trangle_area(int_pts[:2], int_pts[2 * i + 2:2 * i + 4],
                          int_pts[2 * i + 4:2 * i + 6]))
    return area_val


@numba.jit(**_DEVICE)
def _sort_vertex_in_convex_polygon(int_pts, num_of_inter, center, v, vs):
    """Sort the vertices by angle around their mean (insertion sort on a
    pseudo-angle), in place; ``center``, ``v`` (2) and ``vs`` (16) are scratch."""
    if num_of_inter > 0:
        center[:] = 0.0
        for i in range(num_of_inter):
            center[0] += int_pts[2 * i]
            center[1] += int_pts[2 * i + 1]
        center[0] /= num_of_inter
        center[1] /= num_of_inter
        for i in range(num_of_inter):
            v[0] = int_pts[2 * i] - center[0]
            v[1] = int_pts[2 * i + 1] - center[1]
            d = math.sqrt(v[0] * v[0] + v[1] * v[1])
            v[0] = v[0] / d
            v[1] = v[1] / d
            if v[1] < 0:
                v[0] = -2 - v[0]
            vs[i] = v[0]
        j = 0
        temp = 0
        for i in range(1, num_of_inter):
            if vs[i - 1] > vs[i]:
                temp = vs[i]
                tx = int_pts[2 * i]
                ty = int_pts[2 * i + 1]
                j = i
                while j > 0 and vs[j - 1] > temp:
                    vs[j] = vs[j - 1]
                    int_pts[j * 2] = int_pts[j * 2 - 2]
                    int_pts[j * 2 + 1] = int_pts[j * 2 - 1]
                    j -= 1

                vs[j] = temp
                int_pts[j * 2] = tx
                int_pts[j * 2 + 1] = ty


@numba.jit(**_DEVICE)
def _line_segment_intersection(pts1, pts2, i, j, temp_pts, A, B, C, D):
    """Intersection of edge ``i`` of ``pts1`` with edge ``j`` of ``pts2`` into
    ``temp_pts``; ``A``-``D`` (2 each) are scratch, as the kernel's local arrays."""
    A[0] = pts1[2 * i]
    A[1] = pts1[2 * i + 1]

    B[0] = pts1[2 * ((i + 1) % 4)]
    B[1] = pts1[2 * ((i + 1) % 4) + 1]

    C[0] = pts2[2 * j]
    C[1] = pts2[2 * j + 1]

    D[0] = pts2[2 * ((j + 1) % 4)]
    D[1] = pts2[2 * ((j + 1) % 4) + 1]
    BA0 = B[0] - A[0]
    BA1 = B[1] - A[1]
    DA0 = D[0] - A[0]
    CA0 = C[0] - A[0]
    DA1 = D[1] - A[1]
    CA1 = C[1] - A[1]
    acd = DA1 * CA0 > CA1 * DA0
    bcd = (D[1] - B[1]) * (C[0] - B[0]) > (C[1] - B[1]) * (D[0] - B[0])
    if acd != bcd:
        abc = CA1 * BA0 > BA1 * CA0
        abd = DA1 * BA0 > BA1 * DA0
        if abc != abd:
            DC0 = D[0] - C[0]
            DC1 = D[1] - C[1]
            ABBA = A[0] * B[1] - B[0] * A[1]
            CDDC = C[0] * D[1] - D[0] * C[1]
            DH = BA1 * DC0 - BA0 * DC1
            Dx = ABBA * DC0 - BA0 * CDDC
            Dy = ABBA * DC1 - BA1 * CDDC
            temp_pts[0] = Dx / DH
            temp_pts[1] = Dy / DH
            return True
    return False


@numba.jit(**_DEVICE)
def _point_in_quadrilateral(pt_x, pt_y, corners):
    ab0 = corners[2] - corners[0]
    ab1 = corners[3] - corners[1]

    ad0 = corners[6] - corners[0]
    ad1 = corners[7] - corners[1]

    ap0 = pt_x - corners[0]
    ap1 = pt_y - corners[1]

    abab = ab0 * ab0 + ab1 * ab1
    abap = ab0 * ap0 + ab1 * ap1
    adad = ad0 * ad0 + ad1 * ad1
    adap = ad0 * ap0 + ad1 * ap1

    return abab >= abap and abap >= 0 and adad >= adap and adap >= 0


@numba.jit(**_DEVICE)
def _quadrilateral_intersection(pts1, pts2, int_pts, temp_pts, A, B, C, D):
    num_of_inter = 0
    for i in range(4):
        if _point_in_quadrilateral(pts1[2 * i], pts1[2 * i + 1], pts2):
            int_pts[num_of_inter * 2] = pts1[2 * i]
            int_pts[num_of_inter * 2 + 1] = pts1[2 * i + 1]
            num_of_inter += 1
        if _point_in_quadrilateral(pts2[2 * i], pts2[2 * i + 1], pts1):
            int_pts[num_of_inter * 2] = pts2[2 * i]
            int_pts[num_of_inter * 2 + 1] = pts2[2 * i + 1]
            num_of_inter += 1
    for i in range(4):
        for j in range(4):
            has_pts = _line_segment_intersection(pts1, pts2, i, j, temp_pts,
                                                 A, B, C, D)
            if has_pts:
                int_pts[num_of_inter * 2] = temp_pts[0]
                int_pts[num_of_inter * 2 + 1] = temp_pts[1]
                num_of_inter += 1

    return num_of_inter


@numba.jit(**_DEVICE)
def _rbbox_to_corners(corners, rbbox, corners_x, corners_y):
    # clockwise corners, rotated clockwise
    angle = rbbox[4]
    a_cos = math.cos(angle)
    a_sin = math.sin(angle)
    center_x = rbbox[0]
    center_y = rbbox[1]
    x_d = rbbox[2]
    y_d = rbbox[3]
    corners_x[0] = -x_d / 2
    corners_x[1] = -x_d / 2
    corners_x[2] = x_d / 2
    corners_x[3] = x_d / 2
    corners_y[0] = -y_d / 2
    corners_y[1] = y_d / 2
    corners_y[2] = y_d / 2
    corners_y[3] = -y_d / 2
    for i in range(4):
        corners[2 * i] = a_cos * corners_x[i] + a_sin * corners_y[i] + center_x
        corners[2 * i +
                1] = -a_sin * corners_x[i] + a_cos * corners_y[i] + center_y


# float32 scratch of one box pair, as the kernel's cuda.local arrays:
# corners1 8 | corners2 8 | intersection 16 | temp_pts 2 | center 2 | v 2 |
# vs 16 | A B C D 2 each | corners_x 4 | corners_y 4
_SCRATCH = 70


@numba.jit(**_DEVICE)
def _inter(rbbox1, rbbox2, s):
    """Intersection area of two rotated boxes; ``s`` is float32 scratch."""
    corners1 = s[0:8]
    corners2 = s[8:16]
    intersection_corners = s[16:32]

    _rbbox_to_corners(corners1, rbbox1, s[62:66], s[66:70])
    _rbbox_to_corners(corners2, rbbox2, s[62:66], s[66:70])

    num_intersection = _quadrilateral_intersection(
        corners1, corners2, intersection_corners, s[32:34], s[54:56],
        s[56:58], s[58:60], s[60:62])
    _sort_vertex_in_convex_polygon(intersection_corners, num_intersection,
                                   s[34:36], s[36:38], s[38:54])

    return _area(intersection_corners, num_intersection)


@numba.jit(**_DEVICE)
def _dev_rotate_iou_eval(rbox1, rbox2, criterion, s):
    area1 = rbox1[2] * rbox1[3]
    area2 = rbox2[2] * rbox2[3]
    area_inter = _inter(rbox1, rbox2, s)
    if criterion == -1:
        return area_inter / (area1 + area2 - area_inter)
    elif criterion == 0:
        return area_inter / area1
    elif criterion == 1:
        return area_inter / area2
    else:
        return area_inter


@numba.jit(**_JIT)
def _rotate_iou_rows(boxes, query_boxes, iou, criterion):
    s = np.zeros(_SCRATCH, dtype=np.float32)
    for n in range(boxes.shape[0]):
        for k in range(query_boxes.shape[0]):
            # the CUDA kernel passes the query box first
            iou[n, k] = _dev_rotate_iou_eval(query_boxes[k], boxes[n],
                                             criterion, s)


@numba.jit(parallel=True, **_JIT)
def _rotate_iou_rows_parallel(boxes, query_boxes, iou, criterion):
    for n in numba.prange(boxes.shape[0]):
        _rotate_iou_rows(boxes[n:n + 1], query_boxes, iou[n:n + 1],
                         criterion)


# below this many box pairs, starting numba's thread pool costs more than it saves
PARALLEL_MIN_PAIRS = 4096


def rotate_iou_cpu_eval(boxes, query_boxes, criterion=-1):
    """Rotated BEV IoU of every box with every query box, on the CPU.

    A port of mmdet3d's ``rotate_iou_gpu_eval`` (same signature less
    ``device_id``, same result to float32 precision) that runs where CUDA is
    absent. Camera-frame BEV boxes only: the angle turns clockwise.

    Args:
        boxes (np.ndarray): (N, 5) boxes ``(x, y, dx, dy, angle)``.
        query_boxes (np.ndarray): (K, 5) boxes in the same format.
        criterion (int): -1: ``I / (area_q + area_b - I)``; 0: ``I / area_q``;
            1: ``I / area_b``; any other value: the intersection area ``I``.

    Returns:
        np.ndarray: (N, K) float32, entry ``[n, k]`` for ``boxes[n]`` and
        ``query_boxes[k]``.
    """
    boxes = np.ascontiguousarray(boxes, dtype=np.float32)
    query_boxes = np.ascontiguousarray(query_boxes, dtype=np.float32)
    for name, arr in (('boxes', boxes), ('query_boxes', query_boxes)):
        if arr.ndim != 2 or arr.shape[1] != 5:
            raise ValueError(f'rotate_iou_cpu_eval: {name} must have shape '
                             f'(N, 5) (x, y, dx, dy, angle), got {arr.shape}')
    N = boxes.shape[0]
    K = query_boxes.shape[0]
    iou = np.zeros((N, K), dtype=np.float32)
    if N == 0 or K == 0:
        return iou
    kernel = (_rotate_iou_rows_parallel
              if N * K >= PARALLEL_MIN_PAIRS else _rotate_iou_rows)
    kernel(boxes, query_boxes, iou, np.int32(criterion))
    return iou
