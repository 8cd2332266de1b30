"""Tiny models shared by the engine tests (no batch norm, so batch splits do not change the maths)."""

from torch import nn


class TinyNet(nn.Module):
    """A few convolutions with optional dropout (to exercise RNG restore on resume)."""

    def __init__(self, num_classes=4, dropout=0.0, width=8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.Dropout2d(dropout),
            nn.Conv2d(width, width, 3, padding=2, dilation=2),
            nn.ReLU(),
        )
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        return self.head(self.body(x))
