"""The paper's MobileNet space at a quarter of its width, costs reported at 64x64 and 10 classes
(a reduced end-to-end run on CIFAR-10 images written as an image folder)."""
from rlnas.spaces.mobilenet import mobilenet_space

SPACE = mobilenet_space(width=0.25, input_size=64, num_classes=10)
