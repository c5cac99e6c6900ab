"""Experimental gas-phase vibrational band positions the validation reports compare with.

Ethanol and thiophene: NIST CCCBDB's lists of fundamentals (checked when written).  Ethanethiol
and resorcinol: a few well-known band positions recalled from the literature and the NIST WebBook
gas-phase IR spectra *without* access to them here (this machine is offline); each carries
that caveat in its note, and the reports say so.  Replace them with checked values when a
network is available.
"""

from __future__ import annotations

from densnet_cli.analysis.comparison import Band

# NIST Computational Chemistry Comparison and Benchmark Database, Release 22 (May 2022),
# "Experimental data for CH3CH2OH (Ethanol)", vibrational levels (fundamentals, Cs trans
# conformer): https://cccbdb.nist.gov/exp2x.asp?casno=64175&charge=0 .  Band descriptions are
# CCCBDB's own where it gives one; the others are left as mode number and symmetry.  CCCBDB
# marks the O–H stretch as an argon-matrix value (1998Cou/Bou); the gas-phase band lies higher.
ETHANOL_SOURCE = ("NIST CCCBDB Release 22 (May 2022), experimental vibrational fundamentals "
                  "of ethanol, https://cccbdb.nist.gov/exp2x.asp?casno=64175&charge=0")
ETHANOL = [
    Band(3653, "ν1 A′ OH stretch", "argon matrix (CCCBDB: 1998Cou/Bou)"),
    Band(2991, "ν14 A″ CH stretch"), Band(2984, "ν2 A′ CH stretch"),
    Band(2939, "ν3 A′ CH stretch"), Band(2910, "ν15 A″ CH stretch"),
    Band(2900, "ν4 A′ CH stretch"),
    Band(1490, "ν5 A′"), Band(1464, "ν6 A′"), Band(1446, "ν16 A″"), Band(1412, "ν7 A′"),
    Band(1371, "ν8 A′"), Band(1275, "ν17 A″"), Band(1256, "ν9 A′"), Band(1161, "ν18 A″"),
    Band(1091, "ν10 A′"), Band(1028, "ν11 A′"), Band(888, "ν12 A′"), Band(812, "ν19 A″"),
    Band(417, "ν13 A′"), Band(251, "ν20 A″ internal rotation", "CCCBDB: 1975Dur/Buc"),
    Band(200, "ν21 A″"),
]

RECALLED = "approximate, recalled (not verified offline)"
ETHANETHIOL_SOURCE = ("approximate gas-phase band positions of ethanethiol recalled from the "
                      "literature (gauche/trans mixture); not verified offline")
ETHANETHIOL = [
    Band(2975, "CH3 asym. stretch", RECALLED), Band(2930, "CH2 stretch", RECALLED),
    Band(2875, "CH3 sym. stretch", RECALLED), Band(2600, "S–H stretch", RECALLED),
    Band(1450, "CH3/CH2 deformation", RECALLED), Band(1380, "CH3 umbrella", RECALLED),
    Band(1270, "CH2 wag", RECALLED), Band(660, "C–S stretch (gauche)", RECALLED),
]
RESORCINOL_SOURCE = ("approximate gas-phase band positions of resorcinol recalled from the "
                     "literature (jet/gas, several OH rotamers); not verified offline")
RESORCINOL = [
    Band(3655, "O–H stretch", RECALLED), Band(3060, "aromatic C–H stretch", RECALLED),
    Band(1610, "ring C=C stretch", RECALLED), Band(1490, "ring stretch", RECALLED),
    Band(1290, "C–O stretch / ring", RECALLED), Band(1170, "C–O–H bend", RECALLED),
]

# NIST CCCBDB Release 22 (May 2022), "Experimental data for C4H4S (Thiophene)", vibrational
# levels, column "Fundamental", every entry referenced "Shim" (Shimanouchi's Tables of Molecular
# Vibrational Frequencies): https://cccbdb.nist.gov/exp2x.asp?casno=110021&charge=0 (read through
# the search tool's stored copy, 2026-12-05).  B1 is CCCBDB's out-of-plane species.  Mode
# descriptions other than the C–H stretches are not in that table and are left out.
THIOPHENE_SOURCE = ("NIST CCCBDB Release 22 (May 2022), experimental vibrational fundamentals "
                    "of thiophene (Shimanouchi), "
                    "https://cccbdb.nist.gov/exp2x.asp?casno=110021&charge=0")
THIOPHENE = [  # the IR-active species (A1, B1, B2); CCCBDB's A2 modes (867, 688, 567) are not
    Band(3126, "ν1 A1 C–H stretch"), Band(3125, "ν15 B2 C–H stretch"),
    Band(3098, "ν2 A1 C–H stretch"), Band(3086, "ν16 B2 C–H stretch"),
    Band(1504, "ν17 B2"), Band(1409, "ν3 A1"), Band(1360, "ν4 A1"), Band(1256, "ν18 B2"),
    Band(1085, "ν19 B2"), Band(1083, "ν5 A1"), Band(1036, "ν6 A1"), Band(903, "ν20 B2"),
    Band(872, "ν7 A1"), Band(839, "ν12 B1"), Band(751, "ν21 B2"), Band(712, "ν13 B1"),
    Band(608, "ν8 A1"), Band(452, "ν14 B1"),
]

EXPERIMENTS = {"ethanol": (ETHANOL, ETHANOL_SOURCE),
               "ethanethiol": (ETHANETHIOL, ETHANETHIOL_SOURCE),
               "resorcinol": (RESORCINOL, RESORCINOL_SOURCE),
               "thiophene": (THIOPHENE, THIOPHENE_SOURCE)}
