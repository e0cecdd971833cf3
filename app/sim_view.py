"""``radgaze record --sim`` in the window: the simulated reader looks at the image where the window draws it.

The synthetic readings' gaze is kept as places on the image (fractions of its width and height); the simulated
tracker's thread puts each sample, as it is pushed, inside the rectangle the record window shows the image in at
that moment (:class:`ShownImageRect`, kept by the main thread from the viewer state's signals). Without it the
samples kept the screen places of the synthetic display's own layout, and only ~40 % of them fell on the image
the window drew (headless recording has no window: it keeps them as they are).
"""

from __future__ import annotations

from radgaze.capture.base.records import DisplayGeometry
from radgaze.capture.live.sim_tracker import SimTracker, synthetic_gaze_on_image


class ShownImageRect:
    """The image's rectangle on the screen (x0, y0, x1, y1 in the tracker's physical px; None without an image),
    updated on the main thread, read by the simulated tracker's thread (one tuple replaced whole)."""

    def __init__(self) -> None:
        self.rect: tuple[float, float, float, float] | None = None
        self._state = None

    def __call__(self) -> tuple[float, float, float, float] | None:
        return self.rect

    def follow(self, state) -> None:
        """Keep to ``state``'s image (a :class:`radgaze.app.state.ViewerState`) through zoom, pan, resize, case."""
        self._state = state
        state.transform_changed.connect(lambda *_: self.update())
        state.case_changed.connect(lambda *_: self.update())
        self.update()

    def update(self) -> None:
        st = self._state
        if st is None or st.pixels is None:
            self.rect = None
            return
        h, w = st.pixels.shape[:2]
        t, (ox, oy), dpr = st.transform, st.origin_view_px, st.device_pixel_ratio
        x0, y0 = (t.offset_x + ox) * dpr, (t.offset_y + oy) * dpr  # view -> screen: (view + origin) * dpr
        self.rect = (x0, y0, x0 + w * t.scale * dpr, y0 + h * t.scale * dpr)


def start_window_sim(
    layout: str, rate_hz: float, display: DisplayGeometry, name: str
) -> tuple[SimTracker, ShownImageRect]:
    """A simulated tracker for the record window (a real LSL outlet), whose gaze follows the shown image once
    ``rect.follow(window.state)`` is called; until then (no window yet) it sends nothing on the image."""
    gaze, uv = synthetic_gaze_on_image(0, rate_hz, display)
    rect = ShownImageRect()
    sim = SimTracker(gaze, layout, rate_hz, display, name=name, image_fractions=uv, shown_rect_px=rect)
    return sim.start(), rect
