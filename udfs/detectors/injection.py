"""Prompt injection: a maintained library of attack phrasings, and the same library on decoded text.

Each row is one technique (instruction override, role hijack, prompt extraction, indirect
injection addressed to an agent, exfiltration, ...), in English and in the languages attacks
commonly arrive in (de, fr, es, it, pt, nl). Attackers hide the same phrasings in encodings: the
detector also reads base64, base32, hex, binary, percent- and \\u-escapes, Unicode tag characters,
ROT13, reversed, leetspeak and letter-spaced text, and reports what it finds there as
`obfuscated_injection`, spanning the encoded part. The embedding-similarity check against a
corpus of known attacks is the next layer (`injection_similarity`).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import urllib.parse
from typing import Any

from udfs.detectors.base import (
    DetectorMatch,
    Pattern,
    PatternDetector,
    PatternSet,
    compile_re2,
    drop_overlaps,
    readable,
    register,
)

_W = r"(?:\s+\w+){0,3}\s+"  # up to three filler words: "ignore all of the previous instructions"
_I: dict[str, Any] = {"ignore_case": True}

# Nouns for "instructions" and "rules" in the languages we read.
_RULES = (
    r"(?:instructions?|rules|prompts?|guidelines|directives|constraints|context|anweisungen|regeln|"
    r"instructions|consignes|règles|instrucciones|reglas|istruzioni|regole|instruções|regras|instructies|regels)"
)
_NO_LIMITS = (
    r"(?:no|without|sans|sin|senza|ohne|keine|sem|zonder)\s+(?:any\s+|all\s+|your\s+)?(?:restrictions?|limits?|limitations|"
    r"filters?|rules|censorship|content\s+polic(?:y|ies)|guardrails|boundaries|ethics|restricciones|"
    r"restrizioni|limites|limiti|einschränkungen|regeln|règles|reglas|regole|restrições|beperkingen)\b"
)
_SENSITIVE = (
    r"(?:customer\s+(?:list|data|database|emails?|records)|api\s+keys?|credentials|all\s+(?:the\s+)?passwords|secrets|"
    r"environment\s+variables|internal\s+(?:data|configuration|config)|private\s+(?:data|admin)|"
    r"donn[ée]es\s+clients?|datos\s+de\s+(?:los\s+)?clientes|dati\s+(?:dei\s+)?clienti|kundendaten|interne\s+daten)"
)
_AGENT = r"(?:AI|LLM|language\s+model|assistant|bot|chatbot|agent|model)s?"
_SEND = r"(?:send|e-?mail|forward|post|upload|transmit|envoie|env[ií]a|invia|sende|schick)"
_OUTSIDE = r"(?:[\w.+-]+@[\w-]+\.\w|https?://|webhook|externa?[el]?\b)"  # an address, a URL, "external"


@register
class PromptInjectionDetector(PatternDetector):
    """Known prompt-injection and jailbreak techniques, in plain and in encoded text."""

    name = "prompt_injection"
    version = "2"
    patterns = (
        # Instruction override, in English and five other languages.
        Pattern(
            "instruction_override",
            rf"\b(?:ignore|disregard|forget|override|bypass|skip){_W}(?:previous|prior|above|earlier|preceding|original|system|your)"
            rf"(?:\s+\w+){{0,2}}\s+(?:instructions?|rules|prompts?|guidelines|directives|constraints|context)\b",
            0.9,
            **_I,
        ),
        Pattern(
            "instruction_override",
            r"\b(?:forget|ignore|disregard)\s+(?:everything|all)\s+(?:you\s+were\s+told|above|before)\b",
            0.85,
            **_I,
        ),
        Pattern(
            "instruction_override",
            rf"\b(?:ignorier\w*|vergiss\w*|missachte\w*|ignorez|ignore|oublie\w*|ignora\w*|olvid\w*|dimentic\w*|esque[cç]\w*|"
            rf"negeer\w*|vergeet)\b(?:\s+\S+){{0,4}}\s+{_RULES}\b",
            0.85,
            **_I,
        ),
        Pattern(
            "instruction_override",
            r"\b(?:new|updated|neue|nouvelles?|nuevas?|nuove|novas?|nieuwe)\s+(?:instructions?|directives?|rules|anweisungen|"
            r"instrucciones|istruzioni|instruções|instructies)\s*:",
            0.8,
            **_I,
        ),
        Pattern(
            "instruction_override", r"\bsupersedes?\s+(?:all\s+)?(?:prior|previous|earlier|other|existing)\b", 0.8, **_I
        ),
        Pattern(
            "instruction_override",
            r"\byour\s+(?:real|new|actual|true|only)\s+(?:task|job|instructions?|directive|goal|purpose|mission)\s+(?:is|are|now)\b",
            0.8,
            **_I,
        ),
        Pattern(
            "instruction_override",
            r"\bdecode\b.{0,60}\b(?:and|then)\s+(?:follow|do|execute|obey|run|carry\s+out)\b",
            0.8,
            **_I,
        ),
        Pattern("instruction_override", r"\b(?:OVERRIDE|JAILBREAK|SUDO|GOD MODE)\s*:", 0.8),
        # Safety switched off, or permissions claimed.
        Pattern(
            "safety_bypass",
            r"\b(?:safety|security|content|moderation)\s+(?:protocols?|checks?|filters?|guidelines|polic(?:y|ies)|guardrails|"
            r"confirmations?)\b.{0,30}\b(?:disabled|deactivated|off|lifted|suspended|removed|skipped)\b",
            0.8,
            **_I,
        ),
        Pattern(
            "safety_bypass",
            r"\b(?:skip|disable|bypass|turn\s+off|ignore|deactivate)\s+(?:all\s+(?:of\s+)?|any\s+|your\s+)(?:own\s+)?(?:safety|security|content)\s+"
            r"(?:checks?|protocols?|filters?|guidelines|polic(?:y|ies)|guardrails)\b",
            0.8,
            **_I,
        ),
        Pattern(
            "safety_bypass",
            r"\bthe\s+user\s+(?:is|has\s+been)\s+(?:an?\s+)?(?:admin|administrator|root|superuser|verified\s+admin)\b",
            0.75,
            **_I,
        ),
        Pattern(
            "safety_bypass",
            r"\bgrant\b.{0,30}\b(?:admin|administrator|root)\s+(?:access|rights|privileges)\b|\bgrant\s+all\s+requests\b",
            0.75,
            **_I,
        ),
        # Prompt extraction.
        Pattern(
            "prompt_extraction",
            r"\b(?:reveal|print|show|repeat|output|display|leak|dump|tell\s+me|summari[sz]e)(?:\s+\S+){0,8}\s+(?:system|hidden|initial|"
            r"secret|developer|original|operating)\s+(?:prompt|message|instructions?)\b",
            0.9,
            **_I,
        ),
        Pattern(
            "prompt_extraction", r"\b(?:instructions|prompt)\b.{0,40}\b(?:verbatim|word\s+for\s+word)\b", 0.85, **_I
        ),
        Pattern(
            "prompt_extraction",
            r"\beverything\s+in\s+your\s+context(?:\s+window)?\b|\binstructions\s+you\s+were\s+given\b",
            0.8,
            **_I,
        ),
        Pattern(
            "prompt_extraction",
            r"\b(?:rivel|mostr|zeig|mu[eé]str|revel|r[ée]v[èe]l|affich|montr|gib|dime|dimmi)\w*\b.{0,40}(?:system-?prompt|prompt\s+(?:di|del|de)\s+"
            r"sistema|instructions?\s+(?:du\s+)?système|instrucciones\s+del\s+sistema|istruzioni\s+di\s+sistema|systemanweisungen)",
            0.85,
            **_I,
        ),
        # Role hijack and personas.
        Pattern(
            "role_hijack",
            r"\byou\s+are\s+now\s+(?:DAN|an?\s+(?:unrestricted|unfiltered|uncensored|evil|jailbroken)\b)",
            0.9,
            **_I,
        ),
        Pattern("role_hijack", r"\b(?:do\s+anything\s+now|developer\s+mode\s+enabled|jailbreak\s+mode)\b", 0.85, **_I),
        Pattern("role_hijack", r"\b(?:god|jailbreak|unrestricted|unfiltered|uncensored|DAN|evil)\s+mode\b", 0.8, **_I),
        Pattern(
            "role_hijack", r"\byou\s+are\s+no\s+longer\s+(?:a|an|the|bound|restricted|limited|an?\s+AI)\b", 0.8, **_I
        ),
        Pattern(
            "role_hijack",
            rf"\b(?:you|you're|du|vous|tu|eres|sei|bist|êtes|respond|answer|reply|comply|act|AI|assistant)\b.{{0,60}}\b{_NO_LIMITS}",
            0.7,
            **_I,
        ),
        Pattern(
            "role_hijack",
            r"\b(?:stay|remain)\s+in\s+character\b.{0,60}\b(?:no\s+matter|always|never\s+break)\b",
            0.7,
            **_I,
        ),
        # Fake conversation turns and delimiters.
        Pattern(
            "delimiter_injection",
            r"(?:</?(?:system|im_start|im_end)>|\[/?INST\]|<\|(?:system|im_start|endoftext)\|>)",
            0.8,
            **_I,
        ),
        Pattern(
            "delimiter_injection", r"\bEND\s+OF\s+(?:USER\s+INPUT|DOCUMENT|CONTEXT|PROMPT|INSTRUCTIONS)\b", 0.8, **_I
        ),
        Pattern(
            "delimiter_injection",
            r"\[(?:SYSTEM|ADMIN|DEVELOPER)\]|\b(?:SYSTEM|ADMIN|DEVELOPER)(?:\s+(?:NOTE|MESSAGE|OVERRIDE|UPDATE))?\s*:",
            0.75,
        ),
        Pattern(
            "delimiter_injection",
            r"\b(?:NOTA\s+(?:DEL|DI)\s+SISTEMA|note\s+système|systemhinweis|nota\s+do\s+sistema)\b",
            0.75,
            **_I,
        ),
        Pattern(
            "delimiter_injection",
            r"(?:^|\n|###\s*)\s*(?:system|assistant)\s*:\s*(?:sure|certainly|of\s+course|okay|the\s+user)\b",
            0.75,
            **_I,
        ),
        # Indirect injection: text that addresses the agent reading it.
        Pattern(
            "indirect_injection",
            rf"\b(?:if\s+you\s+are\s+(?:an?\s+)?|note\s+(?:to|for)\s+(?:the\s+|all\s+|any\s+)?|important\s+(?:for|to)\s+(?:the\s+)?|"
            rf"attention\s+|instructions?\s+for\s+(?:the\s+)?|\((?:for|to)\s+){_AGENT}\b",
            0.8,
            **_I,
        ),
        Pattern(
            "indirect_injection",
            r"\b(?:for|to)\s+(?:all\s+)?AI\s+(?:coding\s+)?(?:agents?|assistants?|models?)\b",
            0.7,
            **_I,
        ),
        Pattern(
            "indirect_injection",
            r"\bwhen\s+you\s+(?:process|read|summari[sz]e|review|see|handle)\s+this\b.{0,60}\b(?:also|then|first)\b",
            0.75,
            **_I,
        ),
        Pattern(
            "indirect_injection",
            r"\b(?:call|use|invoke|run|execute)\s+(?:the\s+)?(?:(?:send|delete|remove|drop|transfer|post|upload|write|exec|wire|pay|forward)"
            r"_\w+|\w+_(?:email|file|files|message|payment|money|funds|post|upload|delete))\b",
            0.75,
            **_I,
        ),
        Pattern(
            "indirect_injection",
            r"\b(?:append|include|add|insert)\b.{0,50}\b(?:token|code|string|marker|canary)\b.{0,60}\b(?:every|each|all|end\s+of)\b",
            0.7,
            **_I,
        ),
        Pattern(
            "indirect_injection",
            r"\b(?:token|code|string|marker)\b.{0,40}\bmust\s+be\s+(?:included|appended|added)\s+(?:in|to|at)\b",
            0.7,
            **_I,
        ),
        Pattern(
            "indirect_injection",
            r"\b(?:save|store|write)\b.{0,40}\b(?:long-term\s+)?memory\b.{0,40}\b(?:always|every|persists?|future)\b",
            0.7,
            **_I,
        ),
        # Exfiltration of data the model can reach.
        Pattern("exfiltration", rf"\b{_SENSITIVE}\b.{{0,80}}\b{_SEND}\w*\b.{{0,60}}{_OUTSIDE}", 0.8, **_I),
        Pattern("exfiltration", rf"\b{_SEND}\w*\b.{{0,40}}\b{_SENSITIVE}\b.{{0,60}}{_OUTSIDE}", 0.8, **_I),
        Pattern("exfiltration", rf"\b(?:dump|leak|exfiltrate|list\s+all)\w*\b.{{0,40}}\b{_SENSITIVE}\b", 0.75, **_I),
        Pattern(
            "exfiltration", r"!\[[^\]]*\]\(https?://[^)\s]+[?&][^)\s]*=", 0.7
        ),  # markdown image that carries data out
    )
    entities = (*dict.fromkeys(p.entity for p in patterns), "obfuscated_injection")

    def triggers(self) -> list[str]:
        return self._set.patterns + list(_ENCODED_TRIGGERS)

    def detect(self, text: str) -> list[DetectorMatch]:
        text = readable(text)
        hits = self._pattern_hits(text)
        if not hits and (self.params.entities is None or "obfuscated_injection" in self.params.entities):
            # Only where the plain text shows nothing: an attack in the clear needs no decoding.
            hits = [
                DetectorMatch("obfuscated_injection", start, end, 0.8, f"{how}, then {inner[0].why}")
                for start, end, how, view in decoded_views(text)
                if (inner := self._pattern_hits(view))
            ]
        return drop_overlaps(hits)


# Where an encoded payload may hide: each pattern finds a segment, its function decodes it (None: not text).
# A decoder takes any string and returns None or text RE2 can read (no lone surrogates): never raises.
def _printable(data: bytes) -> str | None:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return (
        decoded if decoded and sum(ch.isprintable() or ch.isspace() for ch in decoded) >= 0.9 * len(decoded) else None
    )


def _b64(segment: str) -> str | None:
    try:
        return _printable(base64.b64decode(segment + "=" * (-len(segment) % 4), validate=True))
    except (binascii.Error, ValueError):
        return None


def _b32(segment: str) -> str | None:
    try:
        return _printable(base64.b32decode(segment + "=" * (-len(segment) % 8)))
    except (binascii.Error, ValueError):
        return None


def _a85(segment: str) -> str | None:
    try:
        return _printable(base64.a85decode(segment, adobe=True))
    except ValueError:
        return None


def _b85(segment: str) -> str | None:
    try:
        return _printable(base64.b85decode(segment))
    except ValueError:
        return None


_MORSE = dict(
    zip(
        (
            ".-",
            "-...",
            "-.-.",
            "-..",
            ".",
            "..-.",
            "--.",
            "....",
            "..",
            ".---",
            "-.-",
            ".-..",
            "--",
            "-.",
            "---",
            ".--.",
            "--.-",
            ".-.",
            "...",
            "-",
            "..-",
            "...-",
            ".--",
            "-..-",
            "-.--",
            "--..",
            "-----",
            ".----",
            "..---",
            "...--",
            "....-",
            ".....",
            "-....",
            "--...",
            "---..",
            "----.",
        ),
        "abcdefghijklmnopqrstuvwxyz0123456789",
    )
)


def _morse(segment: str) -> str:
    return " ".join("".join(_MORSE.get(code, "?") for code in word.split()) for word in segment.split("/"))


def _hex(segment: str) -> str | None:
    try:
        return _printable(bytes.fromhex(segment))
    except ValueError:
        return None


def _binary(segment: str) -> str | None:
    """Bytes as groups of eight bits, spaced or not: "01001001 01100111" and "0100100101100111" alike."""
    bits = "".join(segment.split())
    if not bits or len(bits) % 8 or bits.strip("01"):
        return None
    return _printable(bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)))


def _percent(segment: str) -> str:
    return readable(urllib.parse.unquote(readable(segment)))  # invalid UTF-8 becomes U+FFFD


_U_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")


def _u_escapes(segment: str) -> str:
    """\\uXXXX escapes as UTF-16 code units: a surrogate pair spelled as two escapes is one character, a lone
    surrogate (which UTF-8 and so RE2 cannot hold) is U+FFFD."""
    units = _U_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), segment)
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


SEGMENTS = (
    (r"[A-Za-z0-9+/]{20,}={0,2}", _b64, "base64"),  # 15 bytes and more: "Ignore all rules" is 16
    (r"\b[A-Z2-7]{24,}=*", _b32, "base32"),
    (r"\b(?:[0-9a-fA-F]{2}){12,}\b", _hex, "hex"),
    (r"(?:[01]{8}\s?){4,}", _binary, "binary"),  # spaced or not: 32 digits in a row are 4 bytes
    (r"(?:[^\s%]*%[0-9A-Fa-f]{2}){3,}\S*", _percent, "percent-encoding"),
    (r"(?:\\u[0-9A-Fa-f]{4}){3,}", _u_escapes, "\\u escapes"),
    (r"<~.{8,}?~>", _a85, "ascii85"),
    (r"[0-9A-Za-z!#$%&()*+\-;<=>?@^_`{|}~]{25,}", _b85, "base85"),
    (r"[.-]{1,6}(?: (?:/ )?[.-]{1,6}){4,}", _morse, "Morse"),
)
_SEGMENT_RES = [(compile_re2(pattern), decode) for pattern, decode, _ in SEGMENTS]
_SEGMENT_NAMES = [name for _, _, name in SEGMENTS]
_SEGMENT_SET = PatternSet([pattern for pattern, _, _ in SEGMENTS])  # one pass says which decoders to try
_TAGS = re.compile("[\U000e0000-\U000e007f]{4,}")
_LEET = str.maketrans("013457@$", "oieastas")
_SPACED = compile_re2(r"\b(?:\w ){3,}\w\b")
# Key words of the library as ROT13 ("ignore" is "vtaber", "instructions" "vafgehpgvbaf"), reversed
# ("erongi", "snoitcurtsni") and in leetspeak: the whole-text views are read only where one occurs.
_ROT13_WORDS = r"vtaber|vafgehpgvbaf|cebzcg|flfgrz|erongi|snoitcurtsni|tpmorp|metsys"
_LEET_WORDS = r"1gn0r|ign0r|1n57ru|pr3v10u|5y573m|[a-z][0-9][a-z][0-9]"
_TURNED = compile_re2(rf"(?i){_ROT13_WORDS}")
_LEETSPEAK = compile_re2(rf"(?i){_LEET_WORDS}")
# Characters that render as nothing (zero-width, word joiner, BOM, soft hyphen) split a word for a pattern and not
# for a reader; Cyrillic and Greek letters that look Latin do the same inside a Latin word.
_INVISIBLE = "[\u00ad\u200b-\u200d\u2060\ufeff]"
_LOOK_ALIKES = str.maketrans(
    "аеорсухіјѕԁӏАВЕКМНОРСТХІЈЅαονριΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "aeopcyxijsdlABEKMHOPCTXIJSaovpiABEZHIKMNOPTYX"
)
_GREEK_CYRILLIC = "\u0370-\u03ff\u0400-\u04ff"
_MIXED = f"{_INVISIBLE}|[A-Za-z][{_GREEK_CYRILLIC}]|[{_GREEK_CYRILLIC}][A-Za-z]"
_DISGUISED = compile_re2(_MIXED)
_INVISIBLE_RE = re.compile(_INVISIBLE)
# The RE2 triggers under which the engine runs this detector at all, beside its patterns.
_ENCODED_TRIGGERS = (
    *(pattern for pattern, _, _ in SEGMENTS),
    "[\U000e0000-\U000e007f]",
    rf"(?i){_ROT13_WORDS}|{_LEET_WORDS}|(?:\b\w ){{4,}}",
    _MIXED,
)


def decoded_views(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, how, decoded text) for each encoded part of a text, and for the whole text read as
    ROT13, reversed, leetspeak, with spaced letters joined, and without invisible characters and with
    Cyrillic or Greek look-alikes read as Latin, where a sign of each is present."""
    text = readable(text)
    views = []
    for index in _SEGMENT_SET.match(text):
        regex, decode = _SEGMENT_RES[index]
        for m in regex.finditer(text):
            decoded = decode(m.group())
            if decoded and decoded != m.group():
                views.append((m.start(), m.end(), f"decoded {_SEGMENT_NAMES[index]}", decoded))
    for m in _TAGS.finditer(text):  # RE2 wants UTF-8 offsets for these four-byte characters; re is simpler
        views.append(
            (m.start(), m.end(), "decoded Unicode tag characters", "".join(chr(ord(ch) - 0xE0000) for ch in m.group()))
        )
    if _TURNED.search(text):
        views += [
            (0, len(text), "read as ROT13", codecs.encode(text, "rot13")),
            (0, len(text), "read reversed", text[::-1]),
        ]
    if _LEETSPEAK.search(text):
        views.append((0, len(text), "read as leetspeak", text.translate(_LEET)))
    if _SPACED.search(text):
        views.append((0, len(text), "spaced letters joined", _SPACED.sub(lambda m: m.group().replace(" ", ""), text)))
    if _DISGUISED.search(text):
        plain = _INVISIBLE_RE.sub("", text).translate(_LOOK_ALIKES)
        views.append((0, len(text), "invisible characters removed and look-alike letters read as Latin", plain))
    return views
