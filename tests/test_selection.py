import pytest

from mfbench.errors import SelectionError
from mfbench.run.selection import format_selection, parse_selection, parse_value


def test_bare_name():
    sel = parse_selection("reference")
    assert sel.name == "reference" and sel.grid == {} and sel.expand() == [{}]


def test_values_are_typed():
    sel = parse_selection("s[a=1,b=0.5,c=true,d=none,e=adam,f='1',g=1e-6]")
    assert sel.expand() == [{"a": 1, "b": 0.5, "c": True, "d": None, "e": "adam", "f": "1", "g": 1e-6}]


def test_lists_make_a_grid_in_order():
    sel = parse_selection("minibatch[lr=[0.1,0.01],batch_size=[1,2],opt=sgd]")
    assert sel.expand() == [
        {"lr": 0.1, "batch_size": 1, "opt": "sgd"},
        {"lr": 0.1, "batch_size": 2, "opt": "sgd"},
        {"lr": 0.01, "batch_size": 1, "opt": "sgd"},
        {"lr": 0.01, "batch_size": 2, "opt": "sgd"},
    ]


def test_quoted_strings_keep_commas_and_brackets():
    sel = parse_selection("file[path='a,b[1].csv',sep=\",\"]")
    assert sel.expand() == [{"path": "a,b[1].csv", "sep": ","}]


@pytest.mark.parametrize(
    "text",
    ["", "x[", "x[a]", "x[a=1", "x]", "x[a=[1,2]", "x[a=1,a=2]", "x[a=[]]", "x[=1]", "x[a='1]", "a=1", "x[a=1]]"],
)
def test_malformed_selections_are_errors(text):
    with pytest.raises(SelectionError):
        parse_selection(text)


@pytest.mark.parametrize("value", [1, 0.5, 1e-06, True, False, None, "adam", "1", "a,b", "has space"])
def test_format_round_trips(value):
    text = format_selection("x", {"v": value})
    assert parse_selection(text).expand() == [{"v": value}]
    assert parse_value(str(value)) is not None or value is None
