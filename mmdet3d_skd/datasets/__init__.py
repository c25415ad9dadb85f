"""mmdet3d_skd.datasets"""
