"""A scene camera's lens: the radial ("rational") distortion model Pupil Labs calibrate their scene cameras with.

Pupil Capture stores a camera's intrinsics as ``camera_matrix`` K (3 x 3) and ``dist_coefs`` D, ``cam_type``
"radial" (pupil-labs/pupil ``camera_models.py``, ``Radial_Dist_Camera``): OpenCV's model with D = (k1, k2, p1, p2,
k3[, k4, k5, k6]). For a point (x, y) on the normalised image plane, r^2 = x^2 + y^2,

    radial = (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 + k6 r^6)
    x_d = x radial + 2 p1 x y + p2 (r^2 + 2 x^2),   y_d = y radial + p1 (r^2 + 2 y^2) + 2 p2 x y

and image px = K (x_d, y_d, 1). Scene frames and Pupil's gaze ``norm_pos`` are in the distorted image; a homography
holds only between undistorted points, so marker corners and gaze are undistorted first (as Pupil's Surface Tracker
does with ``undistort_points_on_image_plane``). Undistortion inverts the model by fixed-point iteration, as OpenCV's
``undistortPoints`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNDISTORT_ITERATIONS = 50
UNDISTORT_TOL_PX = 1e-6
UNDISTORT_STEP_PLANE = 1e-9  # the iteration stops when no point moves more (normalised plane: ~1e-6 px)


@dataclass(frozen=True)
class RadialLens:
    """K (3, 3) and D (4, 5 or 8 coefficients) of a radial camera model, for one image resolution."""

    camera_matrix: np.ndarray
    dist_coefs: np.ndarray

    def __post_init__(self) -> None:
        k = np.asarray(self.camera_matrix, np.float64)
        d = np.asarray(self.dist_coefs, np.float64).ravel()
        if k.shape != (3, 3) or d.size not in (4, 5, 8):
            raise ValueError(
                f"radial lens: expected a 3x3 camera matrix and 4, 5 or 8 distortion coefficients, got "
                f"{k.shape} and {d.size}"
            )
        object.__setattr__(self, "camera_matrix", k)
        object.__setattr__(self, "dist_coefs", np.pad(d, (0, 8 - d.size)))

    def _to_plane(self, x_px, y_px) -> tuple[np.ndarray, np.ndarray]:
        k = self.camera_matrix
        y = (np.asarray(y_px, np.float64) - k[1, 2]) / k[1, 1]
        x = (np.asarray(x_px, np.float64) - k[0, 2] - k[0, 1] * y) / k[0, 0]
        return x, y

    def _to_px(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        k = self.camera_matrix
        return k[0, 0] * x + k[0, 1] * y + k[0, 2], k[1, 1] * y + k[1, 2]

    def _radial_and_tangential(self, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k1, k2, p1, p2, k3, k4, k5, k6 = self.dist_coefs
        r2 = x * x + y * y
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return radial, dx, dy

    def distort_px(self, x_px, y_px) -> tuple[np.ndarray, np.ndarray]:
        """Ideal (undistorted) image px -> the px the camera records them at."""
        x, y = self._to_plane(x_px, y_px)
        radial, dx, dy = self._radial_and_tangential(x, y)
        return self._to_px(x * radial + dx, y * radial + dy)

    def undistort_px(self, x_px, y_px) -> tuple[np.ndarray, np.ndarray]:
        """Recorded image px -> ideal image px (same K): the model inverted by fixed-point iteration. A point the
        iteration does not bring back onto itself (far outside the calibrated field) is NaN."""
        xd, yd = self._to_plane(x_px, y_px)
        x, y = xd.copy(), yd.copy()
        for _ in range(UNDISTORT_ITERATIONS):
            radial, dx, dy = self._radial_and_tangential(x, y)
            x_next, y_next = (xd - dx) / radial, (yd - dy) / radial
            step = np.nanmax(
                np.abs(np.concatenate([np.ravel(x_next - x), np.ravel(y_next - y)])), initial=0.0
            )
            x, y = x_next, y_next
            if step < UNDISTORT_STEP_PLANE:  # converged (a few iterations for a lens in its calibrated field)
                break
        ux, uy = self._to_px(x, y)
        back_x, back_y = self.distort_px(ux, uy)
        bad = ~(np.hypot(back_x - x_px, back_y - y_px) <= UNDISTORT_TOL_PX * 1e3)  # NaN-safe: 1e-3 px
        return np.where(bad, np.nan, ux), np.where(bad, np.nan, uy)
