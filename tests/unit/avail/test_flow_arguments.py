import pytest

from avail.cli import cluster_arguments_problem, main

TWO = ["flow-0:2101", "flow-1:2101"]


@pytest.mark.parametrize(("addresses", "process_id", "workers"), [
    (None, None, 1), (None, 0, 4), (TWO, 0, 1), (TWO, 1, 2), (["10.0.0.7:2101"], 0, 1),
])
def test_a_coherent_place_in_the_cluster_is_taken(addresses: list[str] | None, process_id: int | None,
                                                   workers: int) -> None:
    assert cluster_arguments_problem(addresses, process_id, workers) is None


@pytest.mark.parametrize(("addresses", "process_id", "workers", "problem"), [
    (TWO, 2, 1, "-i/--process-id 2 is not in the cluster of 2 processes that -a/--addresses lists (0 to 1)"),
    (TWO, -1, 1, "-i/--process-id -1 is not in the cluster"),
    (TWO, None, 1, "-a/--addresses lists 2 processes: give this one's index with -i/--process-id"),
    (None, 1, 1, "-i/--process-id 1 needs -a/--addresses"),
    (["flow-0:2101", "flow-0"], 0, 1, "every entry must be host:port, got 'flow-0'"),
    (["flow-0:2101", "flow-0:2101"], 0, 1, "an address is listed twice"),
    (None, None, 0, "-w/--workers must be 1 or more, got 0"),
])
def test_an_incoherent_one_is_refused_naming_the_option(addresses: list[str] | None, process_id: int | None,
                                                        workers: int, problem: str) -> None:
    found = cluster_arguments_problem(addresses, process_id, workers)
    assert found is not None and problem in found


def test_the_flow_command_refuses_before_connecting_to_anything(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AVAIL_REDIS_URL", "redis://127.0.0.1:1/0")  # never reached: it would wait for it
    assert main(["flow", "-i", "3", "-a", "flow-0:2101;flow-1:2101"]) == 2  # noqa: PLR2004
    assert "avail flow: -i/--process-id 3 is not in the cluster of 2 processes" in capsys.readouterr().err
