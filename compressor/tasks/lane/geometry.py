"""Row anchors and griding cells: TuSimple lanes to UFLD class targets and UFLD outputs back to lanes.

UFLD (deploy.md section 7) classifies, for each row anchor and lane slot, which of `griding_num`
cells across the image holds the lane, or the extra class `griding_num` for "no lane". Cells are
`frame width / (griding_num - 1)` pixels wide, so decoding with the spec's
x = (loc + 0.5) * 1280 / (griding_num - 1) lands on the centre of the cell a label was encoded in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...errors import DataError

TUSIMPLE_FRAME = (1280, 720)  # width, height of a TuSimple frame
TUSIMPLE_ROW_ANCHORS = tuple(range(160, 711, 10))  # the 56 h_samples; UFLD's anchors are these x 288/720
MIN_POINTS = 2  # a decoded lane with this many points or fewer is dropped, as UFLD's test script does


@dataclass(frozen=True)
class LaneGeometry:
    griding_num: int
    row_anchors: tuple[int, ...]  # y of each anchor in the labelled frame (TuSimple: 160..710)
    num_lanes: int
    frame_width: int = TUSIMPLE_FRAME[0]

    @property
    def cell_width(self) -> float:
        return self.frame_width / (self.griding_num - 1)

    @classmethod
    def from_output(cls, shape: tuple[int, ...], metadata: dict[str, str]) -> "LaneGeometry":
        """The geometry of a UFLD output [N, griding_num + 1, rows, lanes]; anchors from the model's
        metadata (`lane_row_anchors`), else TuSimple's 56 rows, else rows spread evenly over 160..710."""
        if len(shape) != 4 or shape[1] < 3:
            raise DataError(f"the lane task needs a UFLD row-anchor output [batch, griding+1, rows, lanes]; "
                            f"the model's first output is {list(shape)}")
        griding, rows, lanes = shape[1] - 1, shape[2], shape[3]
        text = metadata.get("lane_row_anchors")
        if text:
            try:
                anchors = tuple(int(v) for v in text.split(","))
            except ValueError:
                raise DataError(f"the model's metadata lane_row_anchors is not a list of integers: {text!r}") from None
            if len(anchors) != rows:
                raise DataError(f"the model's metadata names {len(anchors)} row anchors but its output has {rows} rows")
        elif rows == len(TUSIMPLE_ROW_ANCHORS):
            anchors = TUSIMPLE_ROW_ANCHORS
        else:
            anchors = tuple(int(round(v)) for v in np.linspace(160, 710, rows))
        width = int(metadata.get("lane_frame_width", TUSIMPLE_FRAME[0]))
        return cls(griding, anchors, lanes, width)

    def lane_x_at_anchors(self, lane, h_samples) -> np.ndarray:
        """x of one labelled lane at every row anchor, -2 above or below its labelled points.

        Between labelled rows x is linear, also across rows the label leaves absent (an occluded
        stretch): UFLD's own labels are lines drawn through the points, which do the same."""
        xs = np.asarray(lane, dtype=np.float64)
        ys = np.asarray(h_samples, dtype=np.float64)
        valid = xs >= 0
        out = np.full(len(self.row_anchors), -2.0)
        if valid.sum() == 0:
            return out
        xs, ys = xs[valid], ys[valid]
        order = np.argsort(ys)
        xs, ys = xs[order], ys[order]
        anchors = np.asarray(self.row_anchors, dtype=np.float64)
        inside = (anchors >= ys[0]) & (anchors <= ys[-1])
        out[inside] = np.interp(anchors[inside], ys, xs)
        return out

    def encode(self, lanes, h_samples) -> torch.Tensor:
        """int64 [rows, lanes]: the cell of each lane slot at each anchor, or griding_num (no lane).

        Slots take the non-empty lanes in the label's order (left to right in TuSimple files);
        lanes beyond `num_lanes` have no slot, as in a 4-lane UFLD."""
        target = np.full((len(self.row_anchors), self.num_lanes), self.griding_num, dtype=np.int64)
        present = [lane for lane in lanes if any(x >= 0 for x in lane)]
        for slot, lane in enumerate(present[: self.num_lanes]):
            xs = self.lane_x_at_anchors(lane, h_samples)
            ok = (xs >= 0) & (xs < self.frame_width)
            target[ok, slot] = np.minimum((xs[ok] / self.cell_width).astype(np.int64), self.griding_num - 1)
        return torch.from_numpy(target)

    def decode(self, logits: torch.Tensor) -> np.ndarray:
        """[N, lanes, rows] x in the labelled frame (-2: no lane) from logits [N, griding+1, rows, lanes]."""
        logits = logits.detach().float()
        prob = torch.softmax(logits[:, : self.griding_num], dim=1)
        cells = torch.arange(self.griding_num, dtype=prob.dtype).reshape(1, -1, 1, 1)
        loc = (prob * cells).sum(1)  # [N, rows, lanes]
        absent = logits.argmax(1) == self.griding_num
        x = torch.round((loc + 0.5) * self.cell_width)
        x[absent] = -2
        return x.permute(0, 2, 1).numpy()

    def to_h_samples(self, xs_by_lane: np.ndarray, h_samples) -> list[list[int]]:
        """Decoded lanes (x per anchor) at the label's `h_samples`, lanes with <= MIN_POINTS dropped."""
        lanes = []
        anchors = np.asarray(self.row_anchors, dtype=np.float64)
        hs = np.asarray(h_samples, dtype=np.float64)
        same = len(hs) == len(anchors) and np.array_equal(hs, anchors)
        for xs in xs_by_lane:
            valid = xs >= 0
            if valid.sum() <= MIN_POINTS:
                continue
            if same:
                lanes.append([int(v) for v in xs])
                continue
            ay, ax = anchors[valid], xs[valid]
            inside = (hs >= ay.min()) & (hs <= ay.max())
            out = np.full(len(hs), -2.0)
            out[inside] = np.round(np.interp(hs[inside], ay, ax))
            lanes.append([int(v) for v in out])
        return lanes
