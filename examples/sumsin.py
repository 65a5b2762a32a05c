"""The smallest useful example: the gradient of sum(sin(x)) in one reverse sweep."""
import math

import numba
import numpy as np

import llad


@numba.njit
def sumsin(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += math.sin(x[i])
    return s


if __name__ == "__main__":
    x = np.linspace(0.0, 1.0, 5)
    dx = np.zeros_like(x)
    llad.autodiff(llad.Reverse, sumsin, llad.Active, llad.Duplicated(x, dx))
    print("gradient:", dx)
    print("cos(x):  ", np.cos(x))
