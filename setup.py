"""mmdet3d_skd: SKD-WM3D weakly supervised monocular 3D detection for MMDetection3D."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r"__version__ = '([^']+)'",
                    (HERE / 'mmdet3d_skd' / 'version.py').read_text()).group(1)

setup(
    name='mmdet3d_skd',
    version=VERSION,
    description=('SKD-WM3D: weakly supervised monocular 3D detection with a '
                 'single-view image, as an MMDetection3D plugin'),
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    author='mmdet3d_skd contributors',
    license='Apache-2.0',
    url='https://github.com/mmdet3d-skd/mmdet3d_skd',
    packages=find_packages(include=['mmdet3d_skd', 'mmdet3d_skd.*']),
    python_requires='>=3.8',
    install_requires=[
        'torch>=2.0',
        'numpy>=1.22,<2',
        'mmengine>=0.10.0,<1.0',
        'mmcv>=2.0.0,<2.2.0',
        'mmdet>=3.0.0,<3.4.0',
        'mmdet3d>=1.4.0,<1.5.0',
        'tqdm',
    ],
    extras_require={
        'tests': ['pytest>=7', 'hypothesis>=6', 'transformers>=4.45'],
        'mim': ['openmim==0.3.9'],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'License :: OSI Approved :: Apache Software License',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
)
