"""The offline renderer: landmark-driven warping of the source crop on the CPU, no weights, no GPU.

Why it exists: where the LivePortrait weights are absent or there is no GPU, the engine still shows a living face,
and for most first runs it is the face people see first.

One module per job:
- ``moves``: each control as landmark moves (FACS prototypes; sided controls as halves of their table);
- ``fields``: the moves spread into dense displacement fields, head-pose parallax, inversion;
- ``eyes``: eyelid synthesis (a blink occludes the eye instead of squashing it; per eye, so winks work; eyeWide
  raises the lid over the eyeball) and the eyeball (the iris found in the pixels and redrawn where gaze puts it);
- ``mouth``: the mouth interior drawn into the gap the jaw tears between the lips;
- ``renderer``: ``OfflineRenderer.prepare`` (once per avatar) and ``render`` (per frame);
- ``tuning``: every named constant.

Sign conventions (image space, as the viewer sees it): ``headYaw`` and ``gazeX`` positive move the face features /
iris towards the image's right; ``headPitch`` and ``gazeY`` positive move them up; ``headRoll`` positive turns the
head clockwise on screen (its top towards the image's right). Sided controls follow ARKit: ``Left`` is the face's
own left, the image's right for a face looking at the camera.

Limits, on purpose: this is a 2-D warp, not a head model. No new views: yaw and pitch are a parallax illusion good
to about 15 degrees, beyond that the far side compresses visibly; hair and shoulders outside the head ellipse stay
put and bend a little at the head's edge under large roll. Lips cannot protrude (pucker only narrows them, jawForward
and cheekPuff are frontal-view approximations: the chin lower, the cheeks wider); the mouth interior is a dark
cavity with upper teeth (their edge a smooth arc, each incisor and canine parted from the next by a faint line;
lower ones once the jaw drops) and the tongue lying low, and tongueOut draws a flat
tongue over the lower lip; a mouth that is open in the photo keeps its own teeth with the upper face while the jaw
drops below them (no drawn row under them; drawn teeth take the photo's colour), and pressed or closed lips shut
over it (the lower lip rises to the upper, a dark line where they meet). Closed lids are the photo's own upper-lid
skin moved down, so heavy eye make-up or glasses smear.
Gaze needs an iris to find: an eye that shows no white (a statue's, a tight squint) keeps its look; the white a
moved iris uncovers is sampled row by row from the white that shows beside it (mirrored across the gap's edges), so
it keeps the photo's texture and shading where the row has white of its own; a faint trace of the old limbus can
stay at the iris's former edge. Landmarks come from dlib's 68 points: a badly fitted lip or eye contour is animated
as fitted. Big combined moves are summed linearly and can fold slightly.
"""

from engine.render.offline.renderer import FIELDS, OfflineRenderer, OfflineSource, field_weights

__all__ = ["FIELDS", "OfflineRenderer", "OfflineSource", "field_weights"]
