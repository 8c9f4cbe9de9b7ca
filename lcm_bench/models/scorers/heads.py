"""The MLP head ImageReward and the LAION aesthetic predictor share (``layers`` 0, 2, 4, 6, 7: Linear layers to
1024, 128, 64, 16 and 1, with dropouts between the first four), built for a backbone's width."""

from __future__ import annotations

WIDTHS = (1024, 128, 64, 16, 1)
LINEAR = (0, 2, 4, 6, 7)


def mlp_head(width: int):
    """The head over ``width``-wide embeddings, in eval mode (its dropouts off)."""
    from torch import nn

    sizes, layers = (width, *WIDTHS), []
    for index in range(LINEAR[-1] + 1):
        if index in LINEAR:
            position = LINEAR.index(index)
            layers.append(nn.Linear(sizes[position], sizes[position + 1]))
        else:
            layers.append(nn.Dropout(0.0))
    return nn.Sequential(*layers).eval()
