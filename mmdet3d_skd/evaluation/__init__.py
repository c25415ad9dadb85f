"""mmdet3d_skd.evaluation"""
