"""Write the SYNTHETIC demo datasets under demo_data/<task>/<original file name>.

Every record here was written for medsweep: none comes from MedNLI, MeQSum, ProbSum, LongHealth, MeDiSumQA or
MeDiSumCode. They only mimic the real files' schemas, so that `make demo` runs end to end without credentialed
data. Letters are short so that every prompt fits a 2048-token context with the tasks' max_new_tokens.

Run: .venv/bin/python scripts/make_demo_data.py [OUT_DIR]   (default: demo_data)
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import openpyxl

MARK = "SYNTHETIC demo record written for medsweep; not real patient or benchmark data"

_NLI = [
    ("Patient has a history of hypertension.", "The patient has high blood pressure.", "entailment"),
    ("He denies any chest pain.", "The patient reports severe chest pain.", "contradiction"),
    ("She was started on metformin last year.", "The patient has diabetes.", "neutral"),
    ("No known drug allergies.", "The patient is allergic to penicillin.", "contradiction"),
    ("History of appendectomy in 2010.", "The patient had surgery in the past.", "entailment"),
    ("Patient smokes one pack per day.", "The patient has lung cancer.", "neutral"),
    ("Afebrile on admission.", "The patient had a normal temperature at admission.", "entailment"),
    ("Creatinine was elevated at 2.1.", "The patient has normal kidney function.", "contradiction"),
    ("She lives alone and walks with a cane.", "The patient needs help with mobility.", "neutral"),
    ("Prior myocardial infarction in 2015.", "The patient has a history of heart disease.", "entailment"),
    ("Lungs clear to auscultation bilaterally.", "The patient has bilateral crackles.", "contradiction"),
    (
        "He takes warfarin for atrial fibrillation.",
        "The patient has an irregular heart rhythm.",
        "entailment",
    ),
]

_MEQSUM = [
    (
        "demo-001.txt",
        "SUBJECT: knee pain\nMESSAGE: my knee hurts when i climb stairs for 3 weeks. what can i "
        "take for it and should i see a doctor?",
        "What can I take for knee pain and should I see a doctor?",
    ),
    (
        "demo-002.txt",
        "where can i buy cheaper insulin, my pharmacy charges too much every month. thanks",
        "Where can I buy cheaper insulin?",
    ),
    (
        "demo-003.txt",
        "SUBJECT: rash\nMESSAGE: my son has a red rash after eating peanuts. is this an allergy?",
        "Is a rash after eating peanuts a sign of allergy?",
    ),
    (
        "demo-004.txt",
        "hello, what are the side effects of lisinopril? i started it last week and cough a lot.",
        "What are the side effects of lisinopril?",
    ),
    (
        "demo-005.txt",
        "SUBJECT: sleep\nMESSAGE: i cant sleep at night since my surgery. what helps with insomnia?",
        "What are treatments for insomnia?",
    ),
    (
        "demo-006.txt",
        "my mother was told she has anemia. what foods should she eat to raise her iron?",
        "What foods help with iron deficiency anemia?",
    ),
    (
        "demo-007.txt",
        "SUBJECT: flu shot\nMESSAGE: can i get the flu shot if i have a cold right now?",
        "Can I get a flu shot while I have a cold?",
    ),
    (
        "demo-008.txt",
        "is it safe to take ibuprofen with my blood pressure medicine amlodipine? please help",
        "Can ibuprofen be taken with amlodipine?",
    ),
]

_PROBSUM = [
    (
        "demo-101",
        "Pt c/o shortness of breath overnight, required 4L NC.",
        "HR 98, BP 130/80, SpO2 93% on 4L.",
        "72 yo M with CHF exacerbation and hypoxia, improving with diuresis.",
        "CHF exacerbation;hypoxia",
    ),
    (
        "demo-102",
        "Febrile overnight to 38.9, blood cultures sent.",
        "WBC 15.2, lactate 2.4.",
        "65 yo F with urosepsis on ceftriaxone.",
        "Urosepsis;leukocytosis",
    ),
    (
        "demo-103",
        "Confused this morning, pulled at lines.",
        "Na 126, glucose 110.",
        "80 yo M with hyponatremia and delirium.",
        "Hyponatremia;delirium",
    ),
    (
        "demo-104",
        "Abdominal pain improved, tolerating clears.",
        "Lipase 450 down from 1200.",
        "54 yo F with gallstone pancreatitis, resolving.",
        "Gallstone pancreatitis",
    ),
    (
        "demo-105",
        "Melena x2 overnight, transfused 1 unit.",
        "Hgb 7.1 from 8.3, INR 1.2.",
        "61 yo M with upper GI bleed, likely peptic ulcer.",
        "Upper GI bleed;acute blood loss anemia",
    ),
    (
        "demo-106",
        "Wheezing, using accessory muscles.",
        "RR 28, SpO2 89% RA, pCO2 52.",
        "58 yo F with COPD exacerbation and hypercapnia.",
        "COPD exacerbation;hypercapnic respiratory failure",
    ),
    (
        "demo-107",
        "Chest pain resolved after nitro.",
        "Troponin 0.8, ECG ST depression V4-V6.",
        "69 yo M with NSTEMI, on heparin.",
        "NSTEMI",
    ),
    (
        "demo-108",
        "Urine output low overnight.",
        "Creatinine 2.8 from 1.1, K 5.6.",
        "77 yo F with acute kidney injury and hyperkalemia.",
        "Acute kidney injury;hyperkalemia",
    ),
]


def _longhealth() -> dict[str, Any]:
    def question(no: int, text: str, options: list[str], correct: str, where: str) -> dict[str, Any]:
        record: dict[str, Any] = {"No": no, "question": text}
        for label, option in zip("abcde", options, strict=True):
            record[f"answer_{label}"] = option
        record["correct"] = correct
        record["answer_location"] = {where: {"start": [0.1], "end": [0.3]}}
        return record

    return {
        "patient_01": {
            "_synthetic": MARK,
            "name": "Alex Demo",
            "birthday": "1960-01-01",
            "diagnosis": "Community-acquired pneumonia",
            "texts": {
                "text_0": "Admission note: 64-year-old with fever and productive cough for five days. "
                "Chest X-ray shows a right lower lobe infiltrate. Started on ceftriaxone and azithromycin.",
                "text_1": "Progress note: Fever resolved on day 3. Oxygen weaned to room air. "
                "Sputum culture grew Streptococcus pneumoniae.",
                "text_2": "Discharge letter: Discharged home on oral amoxicillin for five more days. "
                "Follow-up with the family doctor in one week.",
            },
            "questions": [
                question(
                    1,
                    "Which organism grew in the sputum culture?",
                    [
                        "Staphylococcus aureus",
                        "Streptococcus pneumoniae",
                        "Haemophilus influenzae",
                        "Klebsiella pneumoniae",
                        "Pseudomonas aeruginosa",
                    ],
                    "Streptococcus pneumoniae",
                    "text_1",
                ),
                question(
                    2,
                    "Which antibiotic was given at discharge?",
                    ["Ceftriaxone", "Azithromycin", "Amoxicillin", "Doxycycline", "Levofloxacin"],
                    "Amoxicillin",
                    "text_2",
                ),
                question(
                    3,
                    "Where was the infiltrate on the chest X-ray?",
                    [
                        "Left upper lobe",
                        "Right upper lobe",
                        "Right lower lobe",
                        "Left lower lobe",
                        "Middle lobe",
                    ],
                    "Right lower lobe",
                    "text_0",
                ),
            ],
        },
        "patient_02": {
            "_synthetic": MARK,
            "name": "Sam Example",
            "birthday": "1975-06-15",
            "diagnosis": "Type 2 diabetes with foot ulcer",
            "texts": {
                "text_0": "Admission note: 49-year-old with a non-healing ulcer on the left big toe. "
                "HbA1c 9.4 percent. No signs of osteomyelitis on MRI.",
                "text_1": "Progress note: Wound debrided by surgery. Insulin glargine started at 10 units "
                "at night. Blood glucose improving.",
                "text_2": "Discharge letter: Discharged with daily wound care by a home nurse. "
                "Metformin continued. Podiatry follow-up in two weeks.",
            },
            "questions": [
                question(
                    1,
                    "What was the HbA1c on admission?",
                    ["6.1 percent", "7.2 percent", "8.0 percent", "9.4 percent", "11.3 percent"],
                    "9.4 percent",
                    "text_0",
                ),
                question(
                    2,
                    "Which insulin was started?",
                    [
                        "Insulin lispro",
                        "Insulin glargine",
                        "Insulin aspart",
                        "NPH insulin",
                        "Regular insulin",
                    ],
                    "Insulin glargine",
                    "text_1",
                ),
                question(
                    3,
                    "Who follows the patient up after discharge?",
                    ["Cardiology", "Nephrology", "Podiatry", "Dermatology", "Neurology"],
                    "Podiatry",
                    "text_2",
                ),
            ],
        },
    }


_LETTERS = [
    (
        "demo-n1",
        "Discharge summary. Admitted with chest pain. Troponin was normal and a stress test showed no "
        "ischemia. Pain was attributed to acid reflux. Started omeprazole. Discharged in stable condition.",
        "Why did the patient have chest pain?",
        "The chest pain was caused by acid reflux, not the heart.",
    ),
    (
        "demo-n2",
        "Discharge summary. Admitted with shortness of breath from a heart failure flare. Treated with "
        "IV furosemide and lost 3 kg of fluid. Discharged on a higher dose of oral furosemide.",
        "How was the breathing problem treated?",
        "Extra fluid was removed with a water pill given by IV.",
    ),
    (
        "demo-n3",
        "Discharge summary. Admitted after a fall with a broken left wrist. The fracture was set and "
        "casted by orthopedics. Bone density test showed osteoporosis. Started alendronate.",
        "What did the bone test show?",
        "The bones were thinner than normal (osteoporosis).",
    ),
    (
        "demo-n4",
        "Discharge summary. Admitted with a kidney infection and fever. Urine culture grew E. coli. "
        "Treated with IV ceftriaxone, then oral ciprofloxacin. Fever resolved after two days.",
        "What caused the fever?",
        "A kidney infection caused by bacteria.",
    ),
]

_CODES = [
    (
        "90001",
        "Discharge summary. Hypertension and type 2 diabetes, admitted for pneumonia. Treated with "
        "antibiotics.",
        [
            ("J189", "Pneumonia, unspecified organism"),
            ("I10", "Essential (primary) hypertension"),
            ("E119", "Type 2 diabetes mellitus without complications"),
        ],
    ),
    (
        "90002",
        "Discharge summary. Acute kidney injury from dehydration, resolved with IV fluids. History of "
        "hyperlipidemia.",
        [("N179", "Acute kidney failure, unspecified"), ("E785", "Hyperlipidemia, unspecified")],
    ),
    (
        "90003",
        "Discharge summary. Urinary tract infection with anemia. Treated with ceftriaxone.",
        [("N390", "Urinary tract infection, site not specified"), ("D649", "Anemia, unspecified")],
    ),
    (
        "90004",
        "Discharge summary. Heart failure exacerbation, treated with diuretics. Reflux disease.",
        [
            ("I509", "Heart failure, unspecified"),
            ("K219", "Gastro-esophageal reflux disease without esophagitis"),
        ],
    ),
]


def write_all(out: Path) -> None:
    for task in ("mednli", "meqsum", "probsum", "longhealth", "medisumqa", "medisumcode"):
        (out / task).mkdir(parents=True, exist_ok=True)

    with (out / "mednli" / "mli_test_v1.jsonl").open("w", encoding="utf-8") as handle:
        for index, (s1, s2, label) in enumerate(_NLI):
            row = {
                "pairID": f"demo-{index:03d}",
                "gold_label": label,
                "sentence1": s1,
                "sentence2": s2,
                "_synthetic": MARK,
            }
            handle.write(json.dumps(row) + "\n")

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "QS"
    sheet.append(["File", "CHQ", "Summary", "_synthetic"])
    for file, chq, summary in _MEQSUM:
        sheet.append([file, chq, summary, MARK])
    workbook.save(out / "meqsum" / "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx")

    with (out / "probsum" / "BioNLP2023-1A-Test.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["File ID", "Subjectives", "Objectives", "Assessment", "Summary", "_synthetic"])
        for fields in _PROBSUM:
            writer.writerow([*fields, MARK])

    (out / "longhealth" / "benchmark_v5.json").write_text(json.dumps(_longhealth(), indent=2) + "\n")

    qa = [
        {"note_id": note, "discharge_summary": text, "Question": q, "Answer": a, "_synthetic": MARK}
        for note, text, q, a in _LETTERS
    ]
    (out / "medisumqa" / "MeDiSumQA.json").write_text(json.dumps(qa, indent=2) + "\n")

    # JSONL, as the CLUE generator writes it (the loader takes a JSON list too).
    with (out / "medisumcode" / "MeDiSumCode.json").open("w", encoding="utf-8") as handle:
        for hadm_id, text, codes in _CODES:
            record = {
                "hadm_id": hadm_id,
                "text": text,
                "icd_codes": [{"code": c, "description": d} for c, d in codes],
                "_synthetic": MARK,
            }
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1].startswith("-")):
        sys.exit(__doc__)  # `--help` and stray flags print the usage instead of becoming a folder name
    write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("demo_data"))
