"""mmdet3d_skd.models"""
