"""How much one request may hold: the checks of `coe generate`, the console and batch rows, and the
material passage handed on as context, all cut at the same sizes."""

MAX_CONTEXT_CHARS = 4000
MAX_ANSWER_CHARS = 300
MAX_QUESTION_CHARS = 600
MAX_DISTRACTORS = 8
