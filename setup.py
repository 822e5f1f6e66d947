import os
import os.path as osp
import shutil

from setuptools import find_packages, setup

# OpenMMLab's layout for an installed package: the configs, tools and model index are shipped in
# <package>/.mim, so mmpretrain's model API finds them from any working directory
# (localmim_mm/zoo.py reads the checkout's own files when it runs from a checkout).
MIM_FILES = ('model-index.yml', 'configs', 'tools')


def read_version():
    namespace = {}
    with open('localmim_mm/version.py') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def copy_mim_files():
    """Refresh localmim_mm/.mim from the checkout (git-ignored; rebuilt by every build)."""
    mim = osp.join('localmim_mm', '.mim')
    if not osp.isfile(MIM_FILES[0]):  # building from an sdist that already holds .mim
        return
    shutil.rmtree(mim, ignore_errors=True)
    os.makedirs(mim)
    for name in MIM_FILES:
        if osp.isdir(name):
            shutil.copytree(name, osp.join(mim, name),
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copy(name, osp.join(mim, name))


def mim_package_data():
    mim = osp.join('localmim_mm', '.mim')
    return [osp.relpath(osp.join(root, f), 'localmim_mm')
            for root, _, files in os.walk(mim) for f in files]


copy_mim_files()
setup(
    name='localmim_mm',
    version=read_version(),
    description='LocalMIM (CVPR 2023) and LoMaR for the OpenMMLab stack (mmpretrain plugin)',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['localmim_mm', 'localmim_mm.*']),
    package_data={'localmim_mm': mim_package_data()},
    python_requires='>=3.9',
    install_requires=[
        'mmengine==0.10.7',
        'mmpretrain==1.2.0',
    ],
    extras_require={
        'transfer': ['mmdet==3.3.0', 'mmsegmentation==1.2.2', 'ftfy', 'regex',
                     'pycocotools>=2.0.7'],
    },
    license='Apache-2.0',
)
