"""placeholder"""
MODE_LABELS = {
    "continuous_concat": "continuous_concat (recommended)",
    "continuous_token": "continuous_token",
    "discrete_token": "discrete_token",
}
MODE_DESCRIPTIONS = {
    "continuous_concat": "emotion vector joined to every note: the smoothest mood control",
    "continuous_token": "emotion fed as two leading tokens of continuous value",
    "discrete_token": "emotion rounded to one of 5 x 5 bins, as tokens",
}
