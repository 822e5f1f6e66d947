from setuptools import find_packages, setup


def read_version():
    namespace = {}
    with open('localmim_mm/version.py') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='localmim_mm',
    version=read_version(),
    description='LocalMIM (CVPR 2023) and LoMaR for the OpenMMLab stack (mmpretrain plugin)',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['localmim_mm', 'localmim_mm.*']),
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
