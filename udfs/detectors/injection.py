"""Prompt injection: a maintained library of attack phrasings, matched case-insensitively.

Each row is one technique (instruction override, role hijack, prompt extraction, ...). The
embedding-similarity check against a corpus of known attacks is the next layer (rules issue).
"""

from __future__ import annotations

from udfs.detectors.base import Pattern, PatternDetector, register

_W = r"(?:\s+\w+){0,3}\s+"  # up to three filler words: "ignore all of the previous instructions"


@register
class PromptInjectionDetector(PatternDetector):
    """Known prompt-injection and jailbreak techniques."""

    name = "prompt_injection"
    version = "1"
    patterns = (
        Pattern("instruction_override",
                rf"\b(?:ignore|disregard|forget|override|bypass|skip){_W}(?:previous|prior|above|earlier|preceding|original|system|your)"
                rf"(?:\s+\w+){{0,2}}\s+(?:instructions?|rules|prompts?|guidelines|directives|constraints|context)\b", 0.9, ignore_case=True),
        Pattern("instruction_override",
                r"\b(?:forget|ignore|disregard)\s+(?:everything|all)\s+(?:you\s+were\s+told|above|before)\b", 0.85, ignore_case=True),
        Pattern("prompt_extraction",
                r"\b(?:reveal|print|show|repeat|output|display|leak|tell\s+me)(?:\s+\w+){0,4}\s+(?:system|hidden|initial|secret|developer)\s+"
                r"(?:prompt|message|instructions?)\b", 0.9, ignore_case=True),
        Pattern("role_hijack", r"\byou\s+are\s+now\s+(?:DAN|an?\s+(?:unrestricted|unfiltered|evil|jailbroken)\b)", 0.9, ignore_case=True),
        Pattern("role_hijack", r"\b(?:do\s+anything\s+now|developer\s+mode\s+enabled|jailbreak\s+mode)\b", 0.85, ignore_case=True),
        Pattern("role_hijack", r"\b(?:without|no)\s+(?:any\s+)?(?:restrictions|filters|guidelines|censorship)\b.{0,40}\b(?:AI|assistant|model)\b", 0.6,
                ignore_case=True),
        Pattern("delimiter_injection", r"(?:</?(?:system|im_start|im_end)>|\[/?INST\]|<\|(?:system|im_start|endoftext)\|>)", 0.8, ignore_case=True),
    )
    entities = tuple(dict.fromkeys(p.entity for p in patterns))
