import re
import sys
import unicodedata

from shared.ingest.text_normalize import KEPT_PUNCTUATION, STABLE_PUNCTUATION, normalize_text


def test_kangxi_and_supplement_radicals_become_ordinary_characters() -> None:
    # ⽂ (Kangxi block) is folded by NFKC; ⻚ and ⻓ (Radicals Supplement) are not, and need our table.
    assert normalize_text("⽂件第⼀⻚，⻓度") == "文件第一页，长度"


def test_fullwidth_latin_is_folded_but_chinese_punctuation_is_kept() -> None:
    assert normalize_text("ＧＰＵ显存（８０ＧＢ）：够用！") == "GPU显存（80GB）：够用！"


def test_blank_runs_collapse() -> None:
    assert normalize_text("a  \t b\r\n\n\n\nc\x00") == "a b\n\nc"


def test_text_left_as_it_is_by_the_fast_path_is_its_own_nfkc() -> None:
    # normalize_text skips NFKC for text made only of ASCII, CJK ideographs, KEPT_PUNCTUATION (never normalised)
    # and STABLE_PUNCTUATION: that is only right while none of the others has a decomposition, none is a combining
    # mark and none composes with a character before it.
    second_halves = set()
    for code in range(sys.maxunicode + 1):
        parts = unicodedata.decomposition(chr(code)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            second_halves.add(chr(int(parts[1], 16)))
    stable = [chr(c) for c in range(0x80)] + [chr(c) for c in range(0x4E00, 0x9FA6)] + list(STABLE_PUNCTUATION)
    assert [c for c in stable if unicodedata.decomposition(c) or unicodedata.combining(c) or c in second_halves] == []
    assert not any(0x1100 <= ord(c) <= 0x11FF for c in stable)  # Hangul jamo compose without a decomposition entry


def test_the_fast_path_gives_what_nfkc_gives() -> None:
    text = "第一章　文件系统：“索引节点”（inode）与《目录》—— 1 ≤ n → 2×3 · 【注意】\r\n\n\n\nＫＶ½…⻚"
    expected = "".join(
        part if part in KEPT_PUNCTUATION else unicodedata.normalize("NFKC", part)
        for part in re.split(f"([{KEPT_PUNCTUATION}])", text)
    )
    expected = re.sub(r"[ \t\u3000]+", " ", expected.replace("⻚", "页").replace("\r\n", "\n"))
    expected = re.sub(r"\n{3,}", "\n\n", expected)
    assert normalize_text(text) == expected
    assert normalize_text(expected) == expected
