"""ba: bundle-adjustment residuals (GradBench / ADBench ba) and their sparse Jacobian.

The objective follows GradBench's C++ reference (cpp/gradbench/evals/ba.hpp): observation i projects
point i mod m through camera i mod n (Rodrigues rotation, radial distortion) and weighs the
reprojection error by w_i; the weight error is 1 - w_i^2.  Every one of the p observations is
computed, as GradBench's work-duplication rule asks, and only then is the output truncated.

The Jacobian is (3p) x (11n + 3m + p) with one 2 x 15 block per observation (11 camera, 3 point
and 1 weight columns) and one entry per weight error.  It is computed by llad forward mode with
`BatchDuplicated` and 15 tangents in one pass: tangent k seeds parameter k of *every* camera
(k < 11), coordinate k - 11 of every point (k < 14), or every weight (k = 14).  Each residual reads a
single camera, point and weight, so its tangent k is exactly its derivative with respect to
parameter k of its own camera / point / weight (column compression by a 15-colouring, as sparse-
Jacobian AD tools do).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

import llad

from . import Function, floats, to_list

N_CAM = 11          # rotation (3), centre (3), focal length, principal point (2), distortion (2)
N_COLOURS = N_CAM + 3 + 1


@numba.njit
def rodrigues_rotate(rot, x, y, z):
    """The point (x, y, z) rotated by the angle-axis vector rot."""
    sqtheta = rot[0] * rot[0] + rot[1] * rot[1] + rot[2] * rot[2]
    if sqtheta == 0.0:
        return (x + rot[1] * z - rot[2] * y, y + rot[2] * x - rot[0] * z, z + rot[0] * y - rot[1] * x)
    theta = math.sqrt(sqtheta)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    w0, w1, w2 = rot[0] / theta, rot[1] / theta, rot[2] / theta
    tmp = (w0 * x + w1 * y + w2 * z) * (1.0 - cos_t)
    return (x * cos_t + (w1 * z - w2 * y) * sin_t + w0 * tmp,
            y * cos_t + (w2 * x - w0 * z) * sin_t + w1 * tmp,
            z * cos_t + (w0 * y - w1 * x) * sin_t + w2 * tmp)


@numba.njit
def reprojection_error(cam, point, w, feat, err):
    x_cam, y_cam, z_cam = rodrigues_rotate(cam, point[0] - cam[3], point[1] - cam[4], point[2] - cam[5])
    p0, p1 = x_cam / z_cam, y_cam / z_cam
    rsq = p0 * p0 + p1 * p1
    distortion = 1.0 + cam[9] * rsq + cam[10] * rsq * rsq
    err[0] = w * (p0 * distortion * cam[6] + cam[7] - feat[0])
    err[1] = w * (p1 * distortion * cam[6] + cam[8] - feat[1])


@numba.njit
def objective(cams, points, weights, obs, feats, reproj_err, w_err):
    for i in range(obs.shape[0]):
        reprojection_error(cams[obs[i, 0]], points[obs[i, 1]], weights[i], feats[i], reproj_err[i])
    for i in range(obs.shape[0]):
        w_err[i] = 1.0 - weights[i] * weights[i]


@numba.njit
def to_csr(n, m, obs, d_reproj, d_werr):
    """CSR arrays of the Jacobian from the 15 compressed columns (d_reproj: [15, p, 2], d_werr: [15, p])."""
    p = obs.shape[0]
    rows = np.empty(3 * p + 1, np.int32)
    cols = np.empty(31 * p, np.int32)
    vals = np.empty(31 * p)
    rows[0] = 0
    at = 0
    for i in range(p):
        for r in range(2):
            for k in range(N_COLOURS):
                if k < N_CAM:
                    cols[at] = N_CAM * obs[i, 0] + k
                elif k < N_CAM + 3:
                    cols[at] = N_CAM * n + 3 * obs[i, 1] + k - N_CAM
                else:
                    cols[at] = N_CAM * n + 3 * m + i
                vals[at] = d_reproj[k, i, r]
                at += 1
            rows[2 * i + r + 1] = at
    for i in range(p):
        cols[at] = N_CAM * n + 3 * m + i
        vals[at] = d_werr[N_COLOURS - 1, i]
        at += 1
        rows[2 * p + i + 1] = at
    return rows, cols, vals


@dataclass
class Problem:
    """The replicated inputs, and buffers allocated once per input like the C++ reference's
    Function objects do (its `prepare` step): residuals, and for the Jacobian the 15 seed tangents
    of the inputs and the 15 output tangents, which llad's forward pass overwrites."""

    n: int
    m: int
    cams: np.ndarray            # [n, 11]
    points: np.ndarray          # [m, 3]
    weights: np.ndarray         # [p]
    obs: np.ndarray             # [p, 2]: camera and point index of each observation
    feats: np.ndarray           # [p, 2]
    reproj_err: np.ndarray      # [p, 2]
    w_err: np.ndarray           # [p]
    seeds: tuple = ()           # per input (cams, points, weights): 15 tangents of its shape
    d_reproj: np.ndarray = None  # [15, p, 2]
    d_werr: np.ndarray = None   # [15, p]

    def allocate_tangents(self) -> None:
        p = self.obs.shape[0]
        self.seeds = tuple(np.zeros((N_COLOURS,) + a.shape) for a in (self.cams, self.points, self.weights))
        for k in range(N_CAM):
            self.seeds[0][k, :, k] = 1.0
        for k in range(3):
            self.seeds[1][N_CAM + k, :, k] = 1.0
        self.seeds[2][N_COLOURS - 1] = 1.0
        self.d_reproj, self.d_werr = np.empty((N_COLOURS, p, 2)), np.empty((N_COLOURS, p))


def residuals(pb: Problem) -> tuple:
    objective(pb.cams, pb.points, pb.weights, pb.obs, pb.feats, pb.reproj_err, pb.w_err)
    return pb.reproj_err, pb.w_err


def jacobian(pb: Problem) -> tuple:
    inputs = (pb.cams, pb.points, pb.weights)
    llad.autodiff(llad.Forward, objective,
                  *(llad.BatchDuplicated(a, tuple(s)) for a, s in zip(inputs, pb.seeds)), pb.obs, pb.feats,
                  llad.BatchDuplicated(pb.reproj_err, tuple(pb.d_reproj)),
                  llad.BatchDuplicated(pb.w_err, tuple(pb.d_werr)))
    return to_csr(pb.n, pb.m, pb.obs, pb.d_reproj, pb.d_werr)


def residuals_json(result: tuple) -> dict:
    reproj_err, w_err = result
    return {"reproj_error": {"elements": to_list(reproj_err[0]), "repeated": int(reproj_err.shape[0])},
            "w_err": {"element": float(w_err[0]), "repeated": int(w_err.shape[0])}}


def jacobian_json(result: tuple) -> dict:
    rows, cols, vals = result
    keep = 2 * (N_CAM + 4)                  # the reference sends entries 0..29 and the last one
    return {"rows": [int(v) for v in rows[:keep]] + [int(rows[-1])],
            "cols": [int(v) for v in cols[:keep]] + [int(cols[-1])],
            "vals": to_list(vals[:keep]) + [float(vals[-1])]}


def prepare(raw: dict) -> Problem:
    n, m, p = int(raw["n"]), int(raw["m"]), int(raw["p"])
    obs = np.stack((np.arange(p) % n, np.arange(p) % m), axis=1).astype(np.int64)
    return Problem(n, m, cams=np.tile(floats(raw["cam"]), (n, 1)), points=np.tile(floats(raw["x"]), (m, 1)),
                   weights=np.full(p, float(raw["w"])), obs=obs, feats=np.tile(floats(raw["feat"]), (p, 1)),
                   reproj_err=np.empty((p, 2)), w_err=np.empty(p))


def prepare_jacobian(raw: dict) -> Problem:
    pb = prepare(raw)
    pb.allocate_tangents()
    return pb


def warm_up() -> None:
    raw = {"n": 2, "m": 3, "p": 4, "cam": [0.1, -0.2, 0.3, 1.0, 2.0, -3.0, 500.0, 10.0, -5.0, 1e-3, 1e-6],
           "x": [0.5, -0.4, 2.0], "w": 0.8, "feat": [100.0, 200.0]}
    residuals(prepare(raw))
    jacobian(prepare_jacobian(raw))


FUNCTIONS = {
    "objective": Function(prepare, residuals, residuals_json),
    "jacobian": Function(prepare_jacobian, jacobian, jacobian_json),
}
