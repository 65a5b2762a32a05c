"""lstm: the ADBench/GradBench LSTM text-model loss, and its gradient with respect to main_params
and extra_params by llad reverse mode through all c-1 time steps.

The kernel follows GradBench's C++ reference (cpp/gradbench/evals/lstm.hpp), with 2-D arrays:
main_params row 2i holds layer i's weights and row 2i+1 its biases, each split into four b-wide
gates (forget, input, output, change); state rows 2i, 2i+1 are layer i's hidden and cell vectors;
extra_params rows are the input weight, output weight and output bias.  The normalisation is
log(2 + sum(exp(y))), a quirk inherited from ADBench that the reference keeps.
"""
from __future__ import annotations

import math

import numba
import numpy as np

import llad

from . import Function, floats, to_float, to_list


@numba.njit
def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


@numba.njit
def lstm_layer(weight, bias, hidden, cell, layer_input):
    """One LSTM cell update of one layer, in place on hidden and cell."""
    b = hidden.shape[0]
    for i in range(b):
        forget = sigmoid(layer_input[i] * weight[i] + bias[i])
        ingate = sigmoid(hidden[i] * weight[b + i] + bias[b + i])
        outgate = sigmoid(layer_input[i] * weight[2 * b + i] + bias[2 * b + i])
        change = math.tanh(hidden[i] * weight[3 * b + i] + bias[3 * b + i])
        cell[i] = cell[i] * forget + ingate * change
        hidden[i] = outgate * math.tanh(cell[i])


@numba.njit
def predict(main_params, extra_params, state, x, y):
    """y = the network's prediction for input x; advances every layer's state."""
    layers = main_params.shape[0] // 2
    for i in range(x.shape[0]):
        y[i] = x[i] * extra_params[0, i]
    layer_input = y
    for layer in range(layers):
        lstm_layer(main_params[2 * layer], main_params[2 * layer + 1], state[2 * layer], state[2 * layer + 1],
                   layer_input)
        layer_input = state[2 * layer]
    for i in range(x.shape[0]):
        y[i] = layer_input[i] * extra_params[1, i] + extra_params[2, i]


@numba.njit
def objective(main_params, extra_params, state, sequence):
    c, b = sequence.shape
    state_now = state.copy()
    y = np.empty(b)
    total = 0.0
    count = 0
    for t in range(c - 1):
        predict(main_params, extra_params, state_now, sequence[t], y)
        norm = 0.0
        for i in range(b):
            norm += math.exp(y[i])
        lse = math.log(norm + 2.0)
        for i in range(b):
            total += sequence[t + 1, i] * (y[i] - lse)
        count += b
    return -total / count


def primal(args: tuple) -> float:
    return objective(*args)


def gradient(args: tuple) -> np.ndarray:
    main_params, extra_params, state, sequence = args
    d_main, d_extra = np.zeros_like(main_params), np.zeros_like(extra_params)
    llad.autodiff(llad.Reverse, objective, llad.Duplicated(main_params, d_main),
                  llad.Duplicated(extra_params, d_extra), state, sequence)
    return np.concatenate((d_main.ravel(), d_extra.ravel()))


def prepare(raw: dict) -> tuple:
    return tuple(floats(raw[key]) for key in ("main_params", "extra_params", "state", "sequence"))


def warm_up() -> None:
    rng = np.random.default_rng(0)
    layers, b, c = 2, 3, 4
    args = (rng.normal(size=(2 * layers, 4 * b)), rng.normal(size=(3, b)), rng.normal(size=(2 * layers, b)),
            rng.integers(0, 2, size=(c, b)).astype(np.float64))
    primal(args)
    gradient(args)


FUNCTIONS = {
    "objective": Function(prepare, primal, to_float),
    "jacobian": Function(prepare, gradient, to_list),
}
