"""mmdet3d_skd.engine"""
