"""Words a question is phrased with rather than about, left out of its keyword search.

A question says 什么, 为什么, 哪些, 是, 的, 吗 ("what is ...?", "which ...?") and framing words such as 作用,
意思, 通常; the passage that answers it usually does not. BM25 gives such a term little weight in a large
collection, but in a small one (a team's few files of notes) it is in few chunks, so its idf is high and the
chunks that happen to ask or say "什么是…" outrank the answer. Only the question's side drops them: chunks keep
every token, so nothing is re-indexed, and a question made only of these words still searches them all.

Negations (不, 没有) stay: they change what is asked; so do English words that are also acronyms here.
"""

from __future__ import annotations

_CHINESE = """
什么 为什么 为何 怎么 怎样 怎么样 如何 哪 哪些 哪个 哪种 哪里 哪儿 多少 多久 多大 多长 几 几个 啥 干什么
吗 呢 吧 啊 呀 么 是 的 了 着 过 地 得 之 其 这 那 这个 那个 这些 那些 它 它们 一个 一些
在 和 与 及 或 或者 对 从 到 把 被 给 让 使 以 而 并 但 时 时候 上 下 中 里
会 能 能够 可以 才能 要 该 应该 就 都 也 还 又 才 再 有 说 用 做 用来 起 干
请问 请 一下 指 叫 叫做 称为 所谓 意思 作用 情况 一般 通常 分别 到底 大概 大约 真正
"""
# Without a, i, am, as, it: in Chinese technical text those are A 类地址, I/O, AM, AS 自治系统, IT.
_ENGLISH = """
what which who whom whose why how when where is are was were be been being the an of to in on for
does do did can could should would will shall may might must and or with by from at its this that these
those there their they them you we he she me my your our please
"""

QUESTION_STOPWORDS: frozenset[str] = frozenset((_CHINESE + _ENGLISH).split())
