import pytest

from signoria.orchestrator.answers import extract_answer, extract_letter, extract_number, infer_kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("17 * 3 = 51", "51"),
        ("The answer is $1,200.", "1200"),
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
        ("#### 72 and later a stray 5", "72"),
        ("so the answer: 12. Check: 12/3 = 4", "12"),
        ("The temperature fell to -3.50 degrees", "-3.5"),
        ("It costs 2.0 dollars.", "2"),
        ("The answer is **18**.", "18"),
        ("no digits here", None),
    ],
)
def test_numbers_follow_harness_conventions(text: str, expected: str | None) -> None:
    assert extract_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is (B)", "B"),
        ("C. Paris is the capital", "C"),
        ("Answer: D", "D"),
        ("I think A is wrong, so B", "B"),
        ("The correct option is c) because", "C"),
        ("**B** is right", "B"),
        ("Accordingly, the best choice is none", None),
    ],
)
def test_letters(text: str, expected: str | None) -> None:
    assert extract_letter(text) == expected


def test_kind_is_inferred_from_the_query() -> None:
    mcq = "Which is a prime?\nA) 4\nB) 6\nC) 7\nD) 9"
    assert infer_kind(mcq) == "letter"
    assert infer_kind("What is 2 + 2?") == "number"
    assert infer_kind("Name the capital of France") == "text"
    assert extract_answer("The Capital is PARIS!", "auto", "Name the capital") == "capital is paris"
