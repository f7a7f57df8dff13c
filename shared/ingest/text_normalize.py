"""Text clean-up before splitting: NFKC plus the CJK Radicals Supplement lookalikes NFKC leaves alone.

PDF extractions of Chinese text are full of radical code points that render like ordinary characters
(⽂ for 文, ⻚ for 页). NFKC folds the Kangxi Radicals block (U+2F00–U+2FDF), which has compatibility
decompositions, but not the CJK Radicals Supplement (U+2E80–U+2EFF), which has none; the table below
maps those to their equivalent unified ideographs (after Unicode's EquivalentUnifiedIdeograph.txt).
"""

from __future__ import annotations

import re
import unicodedata

_RADICALS_SUPPLEMENT = {
    "⺁": "厂",
    "⺄": "乙",
    "⺅": "亻",
    "⺆": "冂",
    "⺈": "刀",
    "⺊": "卜",
    "⺋": "卩",
    "⺌": "小",
    "⺍": "小",
    "⺎": "尢",
    "⺏": "尣",
    "⺐": "尢",
    "⺑": "尣",
    "⺒": "巳",
    "⺓": "幺",
    "⺔": "彑",
    "⺖": "忄",
    "⺗": "心",
    "⺘": "扌",
    "⺙": "攵",
    "⺛": "旡",
    "⺜": "日",
    "⺝": "月",
    "⺞": "歺",
    "⺟": "母",
    "⺠": "民",
    "⺡": "氵",
    "⺢": "氺",
    "⺣": "灬",
    "⺤": "爫",
    "⺥": "爫",
    "⺦": "丬",
    "⺧": "牛",
    "⺨": "犭",
    "⺩": "王",
    "⺪": "疋",
    "⺫": "罒",
    "⺬": "示",
    "⺭": "礻",
    "⺮": "竹",
    "⺯": "糸",
    "⺰": "纟",
    "⺱": "罓",
    "⺲": "罒",
    "⺳": "网",
    "⺴": "网",
    "⺵": "网",
    "⺶": "羊",
    "⺷": "羊",
    "⺸": "羊",
    "⺹": "耂",
    "⺺": "聿",
    "⺻": "聿",
    "⺼": "肉",
    "⺽": "臼",
    "⺾": "艹",
    "⺿": "艹",
    "⻀": "艹",
    "⻁": "虎",
    "⻂": "衤",
    "⻃": "襾",
    "⻄": "西",
    "⻅": "见",
    "⻆": "角",
    "⻇": "角",
    "⻈": "讠",
    "⻉": "贝",
    "⻊": "足",
    "⻋": "车",
    "⻌": "辶",
    "⻍": "辶",
    "⻎": "辶",
    "⻏": "阝",
    "⻐": "钅",
    "⻑": "長",
    "⻒": "镸",
    "⻓": "长",
    "⻔": "门",
    "⻕": "阝",
    "⻖": "阝",
    "⻗": "雨",
    "⻘": "青",
    "⻙": "韦",
    "⻚": "页",
    "⻛": "风",
    "⻜": "飞",
    "⻝": "食",
    "⻞": "食",
    "⻟": "食",
    "⻠": "饣",
    "⻡": "首",
    "⻢": "马",
    "⻣": "骨",
    "⻤": "鬼",
    "⻥": "鱼",
    "⻦": "鸟",
    "⻧": "卤",
    "⻨": "麦",
    "⻩": "黄",
    "⻪": "黾",
    "⻫": "斉",
    "⻬": "齐",
    "⻭": "歯",
    "⻮": "齿",
    "⻯": "竜",
    "⻰": "龙",
    "⻱": "龜",
    "⻲": "亀",
    "⻳": "龟",
}
_RADICAL = re.compile(r"[\u2e80-\u2eff]")
# Chinese full-width punctuation is the correct form in Chinese text; NFKC would turn it into ASCII.
KEPT_PUNCTUATION = "，。：；！？（）、"
_KEEP = re.compile(f"([{KEPT_PUNCTUATION}])")
# Text made only of ASCII, CJK ideographs, kept punctuation and these is its own NFKC, so the NFKC pass is
# skipped for it (indexed chunks are normalised already and keyword tokenising normalises them again): none has
# a decomposition, none is a combining mark, none composes with the character before it; see
# tests/unit/test_text_normalize.py, which checks this against unicodedata.
STABLE_PUNCTUATION = "【】《》〈〉「」『』〔〕〖〗“”‘’•·×→≤≥−–—─━"
_NEEDS_NFKC = re.compile(rf"[^\x00-\x7f\u4e00-\u9fa5{KEPT_PUNCTUATION}{STABLE_PUNCTUATION}]")
_SPACE_RUNS = re.compile(r"[ \t\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _fold_radical(found: re.Match[str]) -> str:
    return _RADICALS_SUPPLEMENT.get(found.group(), found.group())


def normalize_text(text: str) -> str:
    """NFKC-normalise (keeping Chinese punctuation), fold radical lookalikes, drop NULs and collapse runs of blanks."""
    if _NEEDS_NFKC.search(text):
        text = "".join(
            part if _KEEP.fullmatch(part) else unicodedata.normalize("NFKC", part) for part in _KEEP.split(text)
        )
        # Only the radicals are visited: str.translate looks up every character, ten times the CPU.
        text = _RADICAL.sub(_fold_radical, text)
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACE_RUNS.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", text).strip()
