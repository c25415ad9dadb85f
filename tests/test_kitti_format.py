"""mmdet3d_skd.datasets.kitti_format: the one owner of KITTI's on-disk rules (the difficulty
rule, the depth PNG encoding, calib and label files written and read back)."""
import numpy as np

from mmdet3d_skd.datasets import kitti_format as kf


def test_difficulty_is_mmdet3ds_rule_height_above_the_minimum():
    # mmdet3d's converter and KITTI evaluation: a box of height <= 40 px is not easy,
    # <= 25 px not moderate / hard
    height = [40.01, 40.0, 25.01, 25.0, 60.0, 60.0, 60.0]
    occluded = [0, 0, 1, 1, 1, 2, 3]
    truncated = [0.0, 0.0, 0.3, 0.0, 0.31, 0.5, 0.0]
    assert kf.kitti_difficulty(height, occluded, truncated).tolist() == [0, 1, 1, -1, 2, 2, -1]
    assert int(kf.kitti_difficulty(45.0, 0, 0.1)) == 0


def test_depth_png_one_rule_for_every_writer():
    d = np.array([[0.0, -1.0, np.nan, np.inf], [1e-4, 1.5, 255.99, 256.5]])
    code = kf.encode_depth_png(d)
    assert code.dtype == np.uint16
    # invalid, non-finite and beyond the uint16 range -> 0; a valid depth never becomes 0
    assert code.tolist() == [[0, 0, 0, 0], [1, 384, 65533, 0]]
    assert np.allclose(kf.decode_depth_png(code)[1, 1:3], [1.5, 65533 / 256])


def test_calib_and_label_files_round_trip(tmp_path):
    p2 = np.array([[721.5, 0.0, 609.6, 44.9], [0.0, 721.5, 172.9, 0.2], [0.0, 0.0, 1.0, 0.003]])
    calib = {k: np.eye(3) if k == 'R0_rect' else (p2 if k == 'P2' else np.eye(3, 4))
             for k in kf.CALIB_KEYS}
    path = str(tmp_path / 'calib.txt')
    kf.atomic_write_text(path, kf.calib_text(calib))
    back = kf.read_calib(path, required=kf.CALIB_KEYS)
    assert np.allclose(back['P2'], p2) and back['R0_rect'].shape == (3, 3)
    four = kf.calib_4x4(back)
    assert all(m.shape == (4, 4) for m in four.values())
    assert np.allclose(four['P2'][:3], p2) and np.allclose(four['P2'][3], [0, 0, 0, 1])
    assert np.allclose(kf.read_intrinsics(path), p2)

    label = str(tmp_path / 'label.txt')
    kf.atomic_write_text(label, kf.label_line('Car', 0.0, 1, -1.5, (10, 20, 110, 80),
                                              (3.9, 1.5, 1.6), (1.0, 1.6, 20.0), -1.45) + '\n'
                         + kf.dontcare_line((0, 0, 5, 5)) + '\n')
    car, dontcare = kf.read_label(label)
    assert car['type'] == 'Car' and car['occluded'] == 1
    assert np.allclose(car['dimensions'], [1.5, 1.6, 3.9])  # the file's h, w, l
    assert dontcare['type'] == 'DontCare'
    assert list(tmp_path.glob('.*.tmp')) == []  # the atomic writes leave no temporary
