"""The evaluation protocols of the field, as data: benchmarks, subjects, actions, sequences, scenes,
metric directions. A leaf module (standard library only), so that loaders, metrics, tables and the
gate read one definition.

Human3.6M (the protocol of Martinez et al. 2017, VideoPose3D, DiffPose): train on subjects S1 S5 S6 S7
S8, test on S9 S11, every test frame; errors in mm averaged per action (the action name without its
trailing number, "Walking 1" -> "Walking"), then over the 15 actions (``Avg``).

MPI-INF-3DHP (Mehta et al. 2017): test sequences TS1-TS6 in three scenes, GS = TS1+TS2 (green screen),
noGS = TS3+TS4 (studio), Outdoor = TS5+TS6; PCK at 150 mm and AUC over 0..150 mm, in percent, higher
is better (``All`` pools the valid frames of every sequence).
"""

from __future__ import annotations

import re

# ------------------------------------------------------------------------------------- benchmarks
BENCHMARKS = ("h36m", "3dhp")
BENCHMARK_ALIASES = {"h36m": "h36m", "human36m": "h36m", "3dhp": "3dhp", "mpi3dhp": "3dhp", "mpi_inf_3dhp": "3dhp",
                     "mpi-inf-3dhp": "3dhp"}
BENCHMARK_NAMES = {"h36m": "Human3.6M", "3dhp": "MPI-INF-3DHP"}

# ------------------------------------------------------------------------------------------- H36M
H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")

# The 15 H36M actions, in the order papers print them.
H36M_ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing",
                "Purchases", "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking",
                "WalkTogether")

# Names some exports use for VideoPose3D's action names.
ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog", "WalkingTogether": "WalkTogether"}


def action_name(name: str) -> str:
    """H36M action without its trailing number: "Walking 1" (or "Walking_1") -> "Walking",
    "Walking" -> "Walking" (VideoPose3D merges them the same way). "TakingPhoto", "WalkingDog" and
    "WalkingTogether" map to "Photo", "WalkDog" and "WalkTogether"."""
    base = re.sub(r"[ _]+\d+$", "", str(name).strip())
    return ACTION_ALIASES.get(base, base)


# ------------------------------------------------------------------------------------------- 3DHP
MPI3DHP_TEST_SEQUENCES = ("TS1", "TS2", "TS3", "TS4", "TS5", "TS6")
# Scenes of the test set, in the order papers print them.
MPI3DHP_SCENES = {"GS": ("TS1", "TS2"), "noGS": ("TS3", "TS4"), "Outdoor": ("TS5", "TS6")}
SCENE_OF_SEQUENCE = {seq: scene for scene, seqs in MPI3DHP_SCENES.items() for seq in seqs}
MPI3DHP_SCENE_ORDER = ("GS", "noGS", "Outdoor", "All")

# ---------------------------------------------------------------------------------------- metrics
# 3DHP's metrics: PCK, AUC (%) and MPJPE (mm) over the 14 evaluation joints (the official protocol), and
# the same over all 17 joints (D3DP's and P-STMO's Python evaluations), their names suffixed "17".
MPI3DHP_ALL_JOINTS_SUFFIX = "17"
MPI3DHP_METRICS = ("PCK", "AUC", "MPJPE", "PCK17", "AUC17", "MPJPE17")
# Which way is better: errors (P1, P2, MPJPE, in mm) lower, PCK and AUC (%) higher.
HIGHER_IS_BETTER = frozenset({"PCK", "AUC", "PCK17", "AUC17"})
# Rows that summarise a table: the H36M average over actions, the 3DHP pool over sequences.
SUMMARY_GROUPS = frozenset({"Avg", "All"})
PCK_THRESHOLD_MM = 150.0
AUC_THRESHOLDS_MM = tuple(float(t) for t in range(0, 151, 5))  # 0, 5, ..., 150: 31 thresholds
