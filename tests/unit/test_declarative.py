"""Declarative task files: what ``declarative.load`` finds in files and folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskscheduler import declarative, errors


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def names(path: Path) -> list[str]:
    return [data["name"] for _, data in declarative.load(path)]


def test_file_with_one_task_yields_that_task_and_its_file(tmp_path: Path) -> None:
    file = write(tmp_path / "hello.yaml", "name: hello\ncron: '0 9 * * *'\ncode: x\n")
    assert list(declarative.load(file)) == [
        (file, {"name": "hello", "cron": "0 9 * * *", "code": "x"})
    ]


def test_tasks_list_yields_every_task_in_order(tmp_path: Path) -> None:
    file = write(
        tmp_path / "many.yml",
        "tasks:\n  - name: b\n    every: 5m\n  - name: a\n    at: '2026-01-01T00:00:00Z'\n",
    )
    assert names(file) == ["b", "a"]


def test_multi_document_yaml_yields_one_task_per_document(tmp_path: Path) -> None:
    file = write(
        tmp_path / "docs.yaml",
        "name: one\n---\n---\ntasks:\n  - name: two\n  - name: three\n",
    )
    assert names(file) == ["one", "two", "three"]


def test_json_file_is_read(tmp_path: Path) -> None:
    file = write(tmp_path / "task.json", json.dumps({"name": "from-json", "every": 60}))
    assert list(declarative.load(file)) == [(file, {"name": "from-json", "every": 60})]


def test_code_file_is_read_relative_to_the_task_file(tmp_path: Path) -> None:
    write(tmp_path / "jobs" / "code" / "hello.py", "def main():\n    pass\n")
    file = write(tmp_path / "jobs" / "hello.yaml", "name: hello\ncode_file: code/hello.py\n")
    [(_, data)] = declarative.load(file)
    assert data == {"name": "hello", "code": "def main():\n    pass\n"}


def test_missing_code_file_is_refused_naming_code_file(tmp_path: Path) -> None:
    file = write(tmp_path / "hello.yaml", "name: hello\ncode_file: absent.py\n")
    with pytest.raises(errors.InvalidTask) as info:
        list(declarative.load(file))
    assert info.value.field == "code_file"
    assert "absent.py" in str(info.value)


def test_invalid_yaml_is_refused_naming_the_file(tmp_path: Path) -> None:
    file = write(tmp_path / "bad.yaml", "name: [unclosed\n")
    with pytest.raises(errors.InvalidTask) as info:
        list(declarative.load(file))
    assert info.value.field == "file"
    assert str(file) in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["- name: a\n- name: b\n", "just text\n", "tasks: {name: a}\n", "tasks:\n  - 1\n"],
)
def test_document_that_is_not_a_task_mapping_is_refused(tmp_path: Path, text: str) -> None:
    file = write(tmp_path / "odd.yaml", text)
    with pytest.raises(errors.InvalidTask) as info:
        list(declarative.load(file))
    assert info.value.field == "file"
    assert "tasks: [...]" in str(info.value)


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    assert list(declarative.load(write(tmp_path / "empty.yaml", ""))) == []


def test_folder_is_searched_recursively_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", "name: b\n")
    write(tmp_path / "a" / "z.yml", "name: a-z\n")
    write(tmp_path / "a" / "deep" / "x.json", '{"name": "a-deep-x"}')
    write(tmp_path / "c.yaml", "tasks:\n  - name: c1\n  - name: c2\n")
    write(tmp_path / "notes.txt", "name: ignored\n")
    write(tmp_path / "a" / "helper.py", "name = 'ignored'\n")
    loaded = list(declarative.load(tmp_path))
    assert [data["name"] for _, data in loaded] == ["a-deep-x", "a-z", "b", "c1", "c2"]
    assert [file.relative_to(tmp_path).as_posix() for file, _ in loaded] == [
        "a/deep/x.json",
        "a/z.yml",
        "b.yaml",
        "c.yaml",
        "c.yaml",
    ]


def test_code_file_in_a_subfolder_is_relative_to_its_own_task_file(
    tmp_path: Path,
) -> None:
    write(tmp_path / "team" / "job.py", "def main():\n    return 'team'\n")
    write(tmp_path / "team" / "job.yaml", "name: team-job\ncode_file: job.py\n")
    [(_, data)] = declarative.load(tmp_path)
    assert data["code"] == "def main():\n    return 'team'\n"


def test_non_existent_path_is_refused_naming_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(errors.InvalidTask) as info:
        list(declarative.load(missing))
    assert info.value.field == "path"
    assert str(missing) in str(info.value)


def test_folder_whose_name_ends_in_yaml_is_searched_not_read(tmp_path: Path) -> None:
    write(tmp_path / "tasks.yaml" / "hello.yaml", "name: hello\n")
    assert names(tmp_path) == ["hello"]
