"""The offline renderer's tuning constants, named, in one place.

Lengths are in inter-ocular units (the distance between the eye centres) unless they say px, so every motion
scales with the face. The values were set by eye on the contact sheet (tools/contact_sheet.py) and checked with
dlib re-detection in tests/render/.
"""

from __future__ import annotations

CROP = 512  # the source crop's side, px
STEP = 2  # the fields live at half resolution and are upsampled per frame
MIN_FIELD_PX = 0.05  # a field smaller than this is zero (sets the per-avatar bounding box)
FIT_RIDGE = 0.02  # damping of the fit that makes each landmark move by its table value (higher: smoother)
RIM_RAMP = 3  # half-res samples over which every field falls to zero at the box's rim

# Head geometry (parallax of yaw and pitch, roll falloff).
HEAD_TOP = 0.85  # head top above the highest brow point
HEAD_DEPTH = 0.55  # depth amplitude of the parabolic face
NOSE_DEPTH = 0.35  # extra depth of the nose bump
NOSE_SIGMA = 0.28

# Gaze: how far the iris moves at gaze +-1, as a share of the eye's width (corner to corner, about 30 mm on an
# adult). A person's comfortable look aside turns the eye about 25-30 degrees: 12 mm eyeball radius x sin 25-30 deg
# = 5-6 mm, a fifth of the width; up and down less (the lids follow the eye and cover more of it).
GAZE_X = 0.2
GAZE_Y = 0.14
GAZE_LID_DOWN = 0.3  # looking fully down closes the upper lid this share of the way (it follows the eye down)
GAZE_LID_UP = 0.9  # looking up raises the upper lid almost as far as the iris rises (it follows the eye up)
IRIS_MIN = 0.15  # the iris's radius, as a share of the eye's width: smallest accepted (adults ~0.2, cartoons more)
IRIS_MAX = 0.4

# Widening (AU5): the upper lid rises a few millimetres (0.05 iod is about 3 mm), never more than this share of
# the lid skin between the lashes and the crease (a hooded lid has little to give).
WIDE_RAISE = 0.085
WIDE_ROOM = 0.8

# Eyelids.
LID_EASE = 2.5  # how strongly the closed lid favours the clean skin at its top over the packed-in crease
LID_BAND = 0.45  # share of the lid-to-brow height that stretches over a closing eye (the crease above stays)
LASH = 0.035  # lash line that slides rigidly with the lid edge (at least the measured dark line, below)
LASH_MAX = 0.045  # the thickest lid line (cartoons draw thick ones) that is moved rigidly
SCLERA_CHROMA = 0.7  # white of the eye: brighter than the skin and at most this share of its colourfulness
SCLERA_SHADE = 0.3  # a filled-in white is this much darker just under the upper lid (its shadow)
SCLERA_REACH = 0.15  # the furthest below the fitted lower lid that white of the eye is looked for
LID_OVERSHOOT = 0.012  # the closed lid tucks this far past the fitted lower lid (which sits a little high)

# A smiling photo: its corners over the lips' seam by more than PHOTO_SMILE_FROM (iod) are a smile, one of
# PHOTO_SMILE_LIFT more a full mouthSmile's worth (the table's corner lift; dlib's corners sit a little inside the
# real ones), which a frown first takes back.
PHOTO_SMILE_FROM = 0.02
PHOTO_SMILE_LIFT = 0.24

# Lips: they stay sealed while the jaw drops a little (soft lips follow the jaw), more so in a smile.
LIP_SEAL = 0.004  # seam gap that the lips close by themselves (small: speech must part them from small openings on)
LIP_SEAL_SMILE = 0.085  # extra seal at a full smile (a closed-lip smile until high intensity)
UPPER_UNSEAL = (0.5, 0.8)  # mouthUpperUp from which the smile's seal eases off, and where it is gone: a broad smile
# bares its teeth, a half one stays closed
PRESS_SEAL = 0.15  # extra seal at full mouthPress / mouthRollLower (on their square, so a press easing in or out
# of a vowel does not shut it): pressed lips stay shut on a jaw still opening
PRESS_SHUT = (0.2, 0.4)  # mouthPress over which a photo's own parted lips ease shut (a light press, thinking's
# 0.15, leaves them as the photo has them)
CLOSE_SHUT = 0.3  # the same for mouthClose (a stream's small mouthClose noise leaves the photo's lips alone)

# The jaw's own field (below the lips' seam) and how it joins the upper face's.
LOW_REACH = 0.9  # the lower region reaches this far beyond the mouth corners
SIDE_FADE = 0.3  # the lower field fades out over this much at the region's sides
CORNER_SOFT = 0.12  # the seam's softness at the corners (the lips stay joined there)
CORNER_REACH = 0.2  # how far inside the corners that softness reaches

# Mouth interior.
INTERIOR_DARK = 0.5  # the darkest interior (corners, under the upper lip) as a share of the mouth colour
THROAT_DARK = 0.55  # how much darker the back of a wide opening is in its middle (the throat shows)
INTERIOR_EDGE = 0.006  # softness of the interior's edge
SHARP_PHOTO_BLUR = 1.2  # what mouth.photo_blur reads on a sharp photo (s42, s12, s6: 1.07-1.22 px): the features'
# own softness; the drawn interior is blurred by the softness a photo has beyond it (s11, s5: 1.4 px) ...
PHOTO_BLUR_MAX = 4.0  # ... read up to this
MIN_EXTRA_BLUR = 0.6  # px: a softer blur is not drawn (no one sees half a pixel at the frame's size; s1 and the
# astronaut, 0.5 and 0.53, stay as drawn)
TEETH_HEIGHT = 0.085  # the most upper teeth shown (iod: about 5 mm, as an open vowel shows them)
TEETH_SHARE = 0.32  # of the opening's height
TEETH_SMILE = 0.6  # more of it in a full smile (the upper lip drawn off the teeth)
TEETH_SMILE_HEIGHT = 0.05  # and taller (iod): a broad smile shows most of the upper incisors' crowns
ROUND_COVERS_TEETH = 0.5  # rounded lips (funnel, pucker at 1) cover this share of the teeth an opening shows
TEETH_MIN_PX = 2.0  # no teeth in an opening smaller than this (px), full teeth 4 px later
TEETH_LIGHT = 1.2  # drawn teeth's luminance over the skin's at the nose bridge, before TEETH_MIX: the row's lit
# middle ends about as bright as the skin (0.98-1.05x); darker teeth read as a grey band (a grimace)
TEETH_MIX = 0.85  # teeth colour vs the interior's (below 1: teeth in the shade of the mouth, never flat white)
INCISAL_ARC = 0.35  # the teeth's edge rises this share of their height from the middle to the corners (smile line)
TOOTH_GAPS = ((0.0, 0.2), (0.135, 0.16), (0.245, 0.12), (0.36, 0.08))  # (iod from the middle, darkening) where two
# teeth meet: the central incisors' line, then the laterals' and the canines' (about 8.5, 6.5, 7.5 mm wide)
LOWER_TEETH = 0.04  # the most lower teeth shown (iod), once the jaw has dropped ...
LOWER_TEETH_FROM = 0.12  # ... past this opening (iod); fully 0.1 iod later
LOWER_TEETH_SPAN = 3.0  # the lower row fades towards the corners sooner than the upper (a narrower arch: the
# incisors show, a grey crescent along the whole lip read as a mouth guard)
LOWER_TEETH_SHADE = 0.5  # the lower row's light in the middle (in the upper lip's and the jaw's shadow) ...
LOWER_TEETH_WARM = 0.5  # ... its colour half the tongue's (the warm shade inside the mouth, not a cool grey)
LOWER_TOOTH_GAPS = ((0.0, 0.3), (0.085, 0.3), (0.175, 0.25))  # (iod from the middle, darkening): where the lower
# incisors meet each other and the canines (about 5.5 and 6 mm wide)
TONGUE_LIFT = 0.45  # how much of the tongue's (shaded) colour the floor of a wide opening shows
TONGUE_OUT = 0.16  # how far below the lower lip's inner edge the tongue's tip reaches at tongueOut 1 (iod)
