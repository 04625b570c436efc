"""The `feature_removal` strategy: a model picks an existing, tested feature and writes the patch removing it.

The answer comes in a delimited format (subject, task description, reasoning, patches). A patch that does not
parse or apply goes back to the model with the error (normalization), up to ``num_attempts`` times; a candidate
is kept only if its patch applies. Every kept subject joins the avoid list of the next candidate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from repogym import patches
from repogym.errors import PatchError, RepogymError
from repogym.llm import LLM, ModelConfig, Usage
from repogym.records import TaskRecord, task_id
from repogym.repo import RepoSource
from repogym.synth.procedural import matching_files

SYSTEM = (
    "You are building a benchmark of realistic coding tasks from an existing repository. A task is made by "
    "removing one existing feature; a coding agent will later re-implement it from your description alone."
)

INSTRUCTIONS = """\
Pick ONE feature that exists in the code below and satisfies all of these:
- it is cross-cutting: removing it touches more than one place, and at least one function that stays in the
  code after the removal is entangled with it (it calls, configures or branches on the feature);
- it is testable: the repository's test suite (or a short new test) can tell whether it works;
- it needs no GPU, cluster, network service or credentials;
- its subject is not one of these (already taken): {avoid}.

Then answer in exactly this format, and nothing else:

<subject>a short name of the feature</subject>
<task_description>
Describe the feature as a request to add it, as if it had never existed: what it does, where it belongs, the
interface (names, arguments, return values, errors), and one concrete example the tests can use. Never mention
that it was removed.
</task_description>
<reasoning>why this feature meets every condition above</reasoning>
<patches>
SEARCH/REPLACE blocks that remove the feature completely and leave the rest of the code working:
### path/to/file.py
<<<<<<< SEARCH
exact lines copied from the file
=======
the lines that replace them
>>>>>>> REPLACE
</patches>
{extra}
The repository's files:
{files}"""

NORMALIZE = """\
Your patch could not be used: {error}

Rewrite the patch so that every SEARCH block is copied exactly from the current file (whole lines, same
indentation) and the blocks apply in order. Answer with the <patches>...</patches> section only.

The patch was:
{patch}"""

_TAG = re.compile(r"<(subject|task_description|reasoning|patches)>\s*(.*?)\s*</\1>", re.S)


class FeatureRemovalConfig(BaseModel):
    model: ModelConfig
    num_candidates: int = Field(1, description="Candidates to make.")
    avoid: list[str] = Field(default_factory=list, description="Subjects not to pick.")
    extra: str = Field("", description="Extra instructions appended to the prompt.")
    max_input_tokens: int = Field(100_000, description="Truncate the files shown to the model beyond this.")
    num_attempts: int = Field(3, description="Attempts (first answer plus normalizations) per candidate.")
    check_patch_applies: bool = Field(True, description="Keep only candidates whose patch applies.")


def parse_answer(text: str) -> dict[str, str]:
    """The tagged fields of an answer; a missing field is an empty string."""
    fields = {k: "" for k in ("subject", "task_description", "reasoning", "patches")}
    for m in _TAG.finditer(text):
        fields[m.group(1)] = m.group(2).strip() + ("\n" if m.group(1) == "patches" else "")
    return fields


def files_prompt(wc: Path, files: list[str], max_tokens: int, warn: Callable[[str], None]) -> str:
    """The files as the model sees them; truncated (with a warning) past ``max_tokens`` (about 4 chars each)."""
    budget = max_tokens * 4
    parts: list[str] = []
    for rel in files:
        text = (wc / rel).read_text(errors="replace")
        block = f"### {rel}\n```\n{text}```\n"
        if len(block) > budget:
            warn(f"--max-input-tokens {max_tokens}: showing the model {len(parts)} of {len(files)} files")
            break
        parts.append(block)
        budget -= len(block)
    return "\n".join(parts)


def check_patch(text: str, wc: Path) -> str | None:
    """None when the patch parses and applies to the working copy (dry run); else the error."""
    try:
        blocks = patches.parse(text)
        if not blocks:
            return "the answer has no SEARCH/REPLACE block"
        patches.apply(blocks, wc, dry_run=True)
    except PatchError as e:
        return str(e)
    return None


async def one_candidate(
    llm: LLM, cfg: FeatureRemovalConfig, wc: Path, files_text: str, avoid: list[str], log: Callable[[str], None]
) -> tuple[dict[str, str] | None, Usage]:
    """Ask for one feature removal; normalize its patch until it applies. Returns (fields or None, usage)."""
    usage = Usage()
    prompt = INSTRUCTIONS.format(
        avoid="; ".join(avoid) or "(none yet)", extra=f"\n{cfg.extra}\n" if cfg.extra else "", files=files_text
    )
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    answer = await llm.chat(messages)
    usage.add(answer.usage)
    fields = parse_answer(answer.message.get("content") or "")
    for attempt in range(1, cfg.num_attempts + 1):
        error = check_patch(fields["patches"], wc) if cfg.check_patch_applies else None
        if error is None and fields["subject"] and fields["task_description"]:
            return fields, usage
        error = error or "the answer lacks a subject or a task description"
        log(f"attempt {attempt}: {error}")
        if attempt == cfg.num_attempts:
            break
        if not (fields["subject"] and fields["task_description"]):
            again = await llm.chat(
                [
                    *messages,
                    {"role": "assistant", "content": answer.message.get("content") or ""},
                    {"role": "user", "content": f"{error}. Answer again in the exact format."},
                ]
            )
            usage.add(again.usage)
            fields = parse_answer(again.message.get("content") or "")
            continue
        fix = await llm.chat([{"role": "user", "content": NORMALIZE.format(error=error, patch=fields["patches"])}])
        usage.add(fix.usage)
        fixed = parse_answer(fix.message.get("content") or "")["patches"]
        fields["patches"] = fixed or (fix.message.get("content") or "")
    return None, usage


async def synthesize(
    src: RepoSource,
    wc: Path,
    patterns: list[str],
    cfg: FeatureRemovalConfig,
    *,
    first_index: int = 0,
    log: Callable[[str], None] = lambda _m: None,
) -> list[TaskRecord]:
    """Up to ``num_candidates`` feature-removal tasks; a candidate whose patch never applies is dropped."""
    files = matching_files(wc, patterns, include_tests=True)
    if not files:
        raise RepogymError(
            f"{src.name}: no file matches {' '.join(patterns)} (globs are relative to the repository root, "
            "e.g. 'src/**/*.py'; quote them so that the shell does not expand them)"
        )
    files_text = files_prompt(wc, files, cfg.max_input_tokens, log)
    avoid = list(cfg.avoid)
    out: list[TaskRecord] = []
    llm = LLM(cfg.model)
    try:
        for k in range(cfg.num_candidates):
            fields, usage = await one_candidate(llm, cfg, wc, files_text, avoid, log)
            if fields is None:
                log(f"candidate {k + 1}: dropped, its patch never applied after {cfg.num_attempts} attempts")
                continue
            avoid.append(fields["subject"])
            blocks = patches.parse(fields["patches"])
            out.append(
                TaskRecord(
                    task_id=task_id(src.name, first_index + len(out)),
                    repo=src.origin,
                    commit_sha=src.commit_sha,
                    matching_files=files,
                    subject=fields["subject"],
                    task_description=fields["task_description"],
                    patches=patches.render(blocks),
                    reasoning=fields["reasoning"],
                    strategy="feature_removal",
                    model=cfg.model.model,
                    usage=usage.record(),
                )
            )
    finally:
        await llm.close()
    return out
