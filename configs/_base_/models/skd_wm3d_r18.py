# SKD-WM3D sized for a CPU: the ResNet-18 + SECONDFPN encoder (./r18_secondfpn.py) and
# 64-channel head branches instead of DLA-34.
_base_ = ['./skd_wm3d_dla34.py', './r18_secondfpn.py']

model = dict(
    backbone=dict(_delete_=True, **_base_.r18_secondfpn.backbone),
    neck=dict(_delete_=True, **_base_.r18_secondfpn.neck),
    bbox_head=dict(feat_channels=64),
    teacher_head=dict(feat_channels=64))
