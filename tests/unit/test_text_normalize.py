from shared.ingest.text_normalize import normalize_text


def test_kangxi_and_supplement_radicals_become_ordinary_characters() -> None:
    # ⽂ (Kangxi block) is folded by NFKC; ⻚ and ⻓ (Radicals Supplement) are not, and need our table.
    assert normalize_text("⽂件第⼀⻚，⻓度") == "文件第一页，长度"


def test_fullwidth_latin_is_folded_but_chinese_punctuation_is_kept() -> None:
    assert normalize_text("ＧＰＵ显存（８０ＧＢ）：够用！") == "GPU显存（80GB）：够用！"


def test_blank_runs_collapse() -> None:
    assert normalize_text("a  \t b\r\n\n\n\nc\x00") == "a b\n\nc"
