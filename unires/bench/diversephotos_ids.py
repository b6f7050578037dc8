"""The DiversePhotos image ids, transcribed from the 12 listings in App. B.1 of arXiv 2506.05599.

Data only. Ids are kept exactly as printed (strings, leading zeros included), in the printed
order; ``TABLE_7_COUNTS`` is Tab. 7 of the paper, against which the listings are checked.
"""

from __future__ import annotations

SOURCES = ("spaq", "koniq", "live")
DEGRADATIONS = ("low_resolution", "motion_blur", "defocus_blur", "noise")

# Printed in the KonIQ low-resolution listing with a space inside it. Kept as printed;
# the candidate below is a guess (the space dropped) and is used only on explicit request.
MALFORMED_KONIQ_ID = "2 6393826"
MALFORMED_KONIQ_ID_CANDIDATE = "26393826"

# App. B.1, "Steps for reproducing DiversePhotos x1", listings 1-12.
DIVERSEPHOTOS_IDS: dict[str, dict[str, list[str]]] = {
    "spaq": {
        "low_resolution": [
            "00019", "00025", "00033", "00109", "00192", "00226", "00251", "00381", "00414",
            "00559", "00561", "00585", "00743", "03973", "04085", "04136", "04270", "04317",
            "04334", "06682",
        ],
        "motion_blur": [
            "00043", "00075", "00121", "00161", "00175", "00178", "00236", "01868", "03513",
            "04089", "04272", "04380", "06341", "06863", "10388", "10391", "10495",
        ],
        "defocus_blur": ["00125", "00212", "00282", "04379", "06727", "09121"],
        "noise": [
            "00077", "00086", "00096", "00143", "00187", "00199", "00292", "00365", "00450",
            "04337", "04345", "06485", "06703", "07121", "07162", "07394", "07494", "07866",
            "07903", "08108", "09682",
        ],
    },
    "koniq": {
        "low_resolution": [
            "1755366250", "187640892", "2096424103", "2443117568", MALFORMED_KONIQ_ID,
            "2704811", "2836089223", "2956548148", "3015139450", "3435545140", "3551648026",
            "4378419360", "527633229", "86243803",
        ],
        "motion_blur": ["2367261033", "3147416579", "331406867", "62480371"],
        "defocus_blur": [
            "1306193020", "315889745", "55711788", "1807195948", "206294085", "2166503846",
            "2214729676", "23371433", "2360058082", "2950983139", "3149433848", "324339500",
            "427196028", "518080817",
        ],
        # Printed with a trailing comma after the last id; 8 ids, as Tab. 7 says.
        "noise": [
            "1317678723", "1987196687", "218457399", "2593384818", "2837843986", "2867718050",
            "3727572481", "4410900135",
        ],
    },
    "live": {
        "low_resolution": ["110", "723", "760", "805", "819", "875"],
        "motion_blur": [
            "1017", "104", "1156", "12", "154", "239", "270", "283", "29", "429", "458", "460",
            "468", "659", "663", "700", "732", "810", "856",
        ],
        "defocus_blur": [
            "337", "550", "592", "698", "713", "714", "717", "731", "737", "750", "751", "787",
            "788", "855", "862", "873", "874", "876", "884", "887",
        ],
        "noise": [
            "1001", "1011", "1024", "1037", "1055", "1079", "1098", "1149", "370", "443", "5",
        ],
    },
}  # fmt: skip

# Tab. 7: images per source and dominating degradation (40 per degradation, 160 in all).
TABLE_7_COUNTS: dict[str, dict[str, int]] = {
    "spaq": {"low_resolution": 20, "motion_blur": 17, "defocus_blur": 6, "noise": 21},
    "koniq": {"low_resolution": 14, "motion_blur": 4, "defocus_blur": 14, "noise": 8},
    "live": {"low_resolution": 6, "motion_blur": 19, "defocus_blur": 20, "noise": 11},
}
