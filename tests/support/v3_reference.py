"""An independent rendering of what the paper's v3 code sent, for tests/tasks/test_fidelity_v3.py.

Written from the v3 code's logic (TIO-IKIM/CLUE at ff75877284133361d15f12e4ab290d230f449dd0, as described in
the project's clue-spec), not from medsweep: it reads the datasets the way v3 read them, builds v3's chat list
(system, k x (user, assistant), user) or base-model text, appends v3's answer prefix, and computes v3's
``truncate`` argument. The prompt texts below are v3's (benchmark data from TIO-IKIM/CLUE, MIT license,
Copyright (c) 2024 Amin Dada et al.), kept here a second time on purpose: a changed prompt file must fail
the test.

v3 rendered a chat with the model's template and then appended the prefix as text; medsweep sends the chat
as messages with the prefix as a final assistant message that vLLM continues (``continue_final_message``).
That translation is the only one made here: the request is v3's chat list plus that message. TGI's
``truncate = N`` becomes vLLM's ``truncate_prompt_tokens = N`` with ``truncation_side = "left"`` (keep the
end).

Run ``python -m tests.support.v3_reference`` to rewrite the expected files under tests/data/fidelity/expected/
(review the diff by hand: they are what the test holds medsweep to).
"""

from __future__ import annotations

import csv
import itertools
import json
import random
import sys
from pathlib import Path
from typing import Any

from tests.support.paths import FIDELITY_DATA

DATA = FIDELITY_DATA
EXPECTED = DATA / "expected"
MAX_POSITION_EMBEDDINGS = 2048  # the fake server's max_model_len stands in for the model config's value
# v3's flags: --model_has_system --model_is_instruct; --model_is_instruct alone; neither (a base model).
MODES = ("chat", "chat_nosystem", "base")

MEDNLI = {
    "sys": "You are a highly skilled assistant, specifically trained to assist medical professionals. You "
    "will recieve two sentences, labeled 'SENTENCE_1' and 'SENTENCE_2', respectively. Your task is to "
    "determine the logical relation between the two sentences. Valid answers are: ENTAILMENT, NEUTRAL or "
    "CONTRADICTION.",
    "user": "\nSENTENCE_1: {sentence1}\nSENTENCE_2: {sentence2}\n",
    "assistant": "{gold_label}",
    "gt": "gold_label",
    "max_new_tokens": 20,
    "k": 3,
}
MEQSUM = {
    "sys": "You are a highly skilled assistant, specifically trained to assist patients. Your primary "
    "responsibility will be to summarize patient inquiries as concise question. You will be given such a "
    "patient inquiry. You will be expected to summarize and rewrite the inquiry as a concise question. Only "
    "write out the question. Do not add any other text.",
    "user": "--------------PATIENT INQUIRY--------------\n{CHQ}\n"
    "--------------END PATIENT INQUIRY--------------",
    "assistant": "Question: {Summary}",
    "gt": "Summary",
    "max_new_tokens": 200,
    "k": 3,
}
PROBSUM = {
    "sys": "You are a highly skilled and detail-oriented assistant, specifically trained to assist medical "
    "professionals in interpreting and extracting key information from medical documents. Your primary "
    "responsibility will be to analyze discharge letters from hospitals. You will receive an excerpt of such "
    "a discharge letter. Your task is to summarize the diagnoses and problems that led to the patient's "
    "hospitalization.",
    "user": "--------------BEGIN DISCHARGE LETTER--------------\n{Subjectives}\n\n{Assessment}\n"
    "--------------END DISCHARGE LETTER--------------\nNow respond with the list of diagnoses and patient "
    "problems. Do not generate anything else.",
    "assistant": "Diagnoses/Patient problems: {Summary}",
    "gt": "Summary",
    "max_new_tokens": 100,
    "k": 3,
}
MEDISUMQA = {
    "sys": "You are a highly skilled assistant, specifically trained to assist lays in understanding and "
    "extracting key information from medical documents. Your primary responsibility will be to interprete "
    "discharge letters from hospitals. You will receive such a discharge letter. You should carefully review "
    "the contents and accurately answer questions related to this document. Only respond with the correct "
    "answer to the question. Answer briefly without mentioning a lot of specific details. If the question is "
    "about measurements (e.g., lab values), interpret their meaning in relation to the question, rather than "
    "writing down the values. Do not generate anything else.",
    "user": "--------------BEGIN DISCHARGE LETTER--------------\n{without_discharge_summary}\n"
    "--------------END DISCHARGE LETTER--------------\nQuestion: {Question}",
    "assistant": "Answer: {Answer}",
    # At ff75877 the prefix line was format(answer="") (a KeyError); before fdb4ec7 it was format(Answer="").
    "gt": "Answer",
    "max_new_tokens": 200,
    "k": 1,
}
MEDISUMCODE = {
    "sys": "You are a highly skilled and detail-oriented assistant, specifically trained to assist medical "
    "professionals in interpreting and extracting key information from medical documents. Your primary "
    "responsibility will be to analyze discharge letters from hospitals. You will be given such a discharge "
    "letter. Your task is to identify all primary and secondary diagnoses from the report and list their "
    "respective ICD-10 codes.",
    "user": "--------------BEGIN DISCHARGE LETTER--------------\n{text}\n--------------END DISCHARGE "
    "LETTER--------------\nNow return the list of diagnoses ICD-10 codes you found. Only list the ICD-10 "
    "codes. Do not generate anything else.",
    "assistant": "ICD-10 Codes: {codes}",
    "gt": "codes",
    "max_new_tokens": 200,
    "k": 1,
}
LONGHEALTH_SYS = (
    "\nYou are a highly skilled and detail-oriented assistant, specifically trained to assist medical "
    "professionals in interpreting and extracting key information from medical documents. Your primary "
    "responsibility will be to analyze discharge letters from hospitals. When you receive one or more of "
    "these letters, you will be expected to carefully review the contents and accurately answer "
    "multiple-choice questions related to these documents. \n\nYour answers should be:\n1. Accurate: Make "
    "sure your answers are based on the information provided in the letters.\n2. Concise: Provide brief and "
    "direct answers without unnecessary elaboration.\n3. Contextual: Consider the context and specifics of "
    "each question to provide the most relevant information.\n\nRemember, your job is to streamline the "
    "physician's decision-making process by providing them with accurate and relevant information from "
    "discharge summaries. Efficiency and reliability are key.\n"
)
LONGHEALTH_TEMPLATE = (
    "\n--------------BEGIN DOCUMENTS--------------\n\n{documents}\n\n"
    "--------------END DOCUMENTS--------------\n\n{question_text}\n{options}\n\n"
    "Please answer using the following format:\n1. Begin your answer with "
    'the phrase "The correct answer is".\n2. State the letter of the correct option (e.g., A, B, C, D, E).'
    "\n3. Follow the letter with a colon and the exact text of the option you chose.\n4. Make sure your "
    "answer is a single, concise sentence.\n\nFor example, if the correct answer to a question is option C, "
    "and the text for C is 'Acute Bronchitis', your answer should be: \n'The correct answer is C: Acute "
    "bronchitis.'\n"
)
LONGHEALTH_MAX_LEN = 8140  # run_LongHealth8k.sh


# --- the datasets, read as v3 read them -------------------------------------------------------------------


def mednli_rows() -> list[dict[str, Any]]:
    with (DATA / "mednli" / "mli_test_v1.jsonl").open() as handle:
        return [json.loads(line) for line in handle]


def meqsum_rows() -> list[dict[str, Any]]:
    # v3: pd.read_excel(...).to_dict("records"); the test writes the xlsx from these rows.
    rows: list[dict[str, Any]] = json.loads((DATA / "meqsum" / "rows.json").read_text())
    return rows


def probsum_rows() -> list[dict[str, Any]]:
    with (DATA / "probsum" / "BioNLP2023-1A-Test.csv").open(newline="") as handle:
        reader = csv.reader(handle)
        headers = next(reader)
        data = [dict(zip(headers, row, strict=True)) for row in reader]
    for row in data:  # v3's "strip a trailing ;" assigned nothing; the replace did happen
        row["Summary"] = row["Summary"].replace(";", ", ")
    return data


def medisumqa_rows() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((DATA / "medisumqa" / "MeDiSumQA.json").read_text())
    random.Random(1).shuffle(data)  # random.seed(1); random.shuffle(data): the same generator and draws
    return data


def medisumcode_rows() -> list[dict[str, Any]]:
    data = json.loads((DATA / "medisumcode" / "MeDiSumCode.json").read_text())
    return [{"text": e["text"], "codes": ", ".join(d["code"] for d in e["icd_codes"])} for e in data]


FEW_SHOT = {
    "mednli": (MEDNLI, mednli_rows, lambda n: n - 200),  # v3 subtracted 200 here, not max_new_tokens
    "meqsum": (MEQSUM, meqsum_rows, lambda n: min(n - 200, 24576)),
    "probsum": (PROBSUM, probsum_rows, lambda n: n - 100),
    "medisumqa": (MEDISUMQA, medisumqa_rows, lambda n: n - 200),
    "medisumcode": (MEDISUMCODE, medisumcode_rows, lambda n: n - 200),
}


# --- v3's prompt building ---------------------------------------------------------------------------------


def _few_shot_chat(
    spec: dict[str, Any], demos: list[dict[str, Any]], mode: str
) -> list[dict[str, str]] | str:
    """build_few_shot_examples: the first turn carries the system prompt (its own message, merged into the
    first user turn without a system role, or the head of the base-model text)."""
    chat: list[dict[str, str]] | str = [] if mode != "base" else ""
    for i, example in enumerate(demos):
        user = spec["user"].format(**example)
        assistant = spec["assistant"].format(**example)
        if mode == "base":
            chat += f"{spec['sys']}\n\n{user}\n\n{assistant}" if i == 0 else f"\n\n{user}\n\n{assistant}"
            continue
        assert isinstance(chat, list)
        if i == 0 and mode == "chat":
            chat.append({"role": "system", "content": spec["sys"]})
        if i == 0 and mode == "chat_nosystem":
            user = f"{spec['sys']}\n\n{user}"
        chat += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return chat


def few_shot_requests(task: str, mode: str) -> list[dict[str, Any]]:
    spec, rows, truncate = FEW_SHOT[task]
    data = rows()
    demos, tests = data[: spec["k"]], data[spec["k"] :]
    chat = _few_shot_chat(spec, demos, mode)
    prefix = spec["assistant"].format(**{spec["gt"]: ""})
    out = []
    for entry in tests:
        user = spec["user"].format(**entry)
        body: dict[str, Any] = {"max_tokens": spec["max_new_tokens"]}
        if mode == "base":
            assert isinstance(chat, str)
            body["prompt"] = chat + f"\n\n{user}\n\n" + prefix
        else:
            assert isinstance(chat, list)
            messages = [*chat, {"role": "user", "content": user}]
            if prefix:
                messages.append({"role": "assistant", "content": prefix})
                body.update(add_generation_prompt=False, continue_final_message=True)
            body["messages"] = messages
        body.update(truncate_prompt_tokens=truncate(MAX_POSITION_EMBEDDINGS), truncation_side="left")
        out.append(body)
    return out


def _longhealth_body(prompt: str, mode: str, truncate: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"max_tokens": 50}
    if mode == "base":
        body["prompt"] = LONGHEALTH_SYS + "\n\n\n" + prompt
    elif mode == "chat_nosystem":
        body["messages"] = [{"role": "user", "content": LONGHEALTH_SYS + prompt}]
    else:
        body["messages"] = [
            {"role": "system", "content": LONGHEALTH_SYS},
            {"role": "user", "content": prompt},
        ]
    if truncate is not None:
        body.update(truncate_prompt_tokens=truncate, truncation_side="left")
    return body


def longhealth_groups(mode: str) -> list[dict[str, Any]]:
    """Per question and sub-task: the renderings v3 could send (it shuffled the documents unseeded, so every
    order of the packed documents is one) and how many times it sent one (5)."""
    data = json.loads((DATA / "longhealth" / "benchmark_v5.json").read_text())
    groups = []
    for patient_id, patient in data.items():
        others = [t for pid, p in data.items() if pid != patient_id for t in p["texts"].values()]
        for question in patient["questions"]:
            answer_docs = [patient["texts"][t] for t in question["answer_location"]]
            own = [t for k, t in patient["texts"].items() if k not in question["answer_location"]]
            for subtask, labels, docs in (
                ("task1", "abcde", answer_docs + own),
                ("task2", "abcdef", answer_docs + others),  # sample_distractions(n=10): all of a small pool
                ("task3", "abcdef", others),
            ):
                # create_prompt's budget is 8140 minus the system prompt's tokens; a token is at least one
                # byte, so documents this short are all packed whole.
                assert sum(len(d.encode()) for d in docs) + len(LONGHEALTH_TEMPLATE) < LONGHEALTH_MAX_LEN // 2
                texts = {**question, "answer_f": "Question cannot be answered with provided documents"}
                options = "\n".join(label.upper() + ": " + texts[f"answer_{label}"] for label in labels)
                truncate = MAX_POSITION_EMBEDDINGS - 50 if subtask == "task1" else None  # none for 2/3
                allowed = []
                for order in itertools.permutations(docs):
                    prompt = LONGHEALTH_TEMPLATE.format(
                        documents="\n\n--------------\n\n".join(order),
                        question_text=question["question"],
                        options=options,
                    )
                    allowed.append(_longhealth_body(prompt, mode, truncate))
                groups.append({"item": f"{patient_id}/{question['No']}", "subtask": subtask, "count": 5,
                               "allowed": allowed})  # fmt: skip
    return groups


def expected(task: str, mode: str) -> Any:
    return longhealth_groups(mode) if task == "longhealth" else few_shot_requests(task, mode)


TASKS = ("mednli", "meqsum", "probsum", "longhealth", "medisumqa", "medisumcode")


def expected_path(task: str, mode: str) -> Path:
    return EXPECTED / f"{task}.{mode}.json"


def main() -> None:
    EXPECTED.mkdir(parents=True, exist_ok=True)
    for task in TASKS:
        for mode in MODES:
            text = json.dumps(expected(task, mode), indent=1, ensure_ascii=False) + "\n"
            expected_path(task, mode).write_text(text)
    print(f"wrote {len(TASKS) * len(MODES)} files under {EXPECTED}", file=sys.stderr)


if __name__ == "__main__":
    main()
