"""FifoServer reservation times equal those of a real ``simpy.Resource(capacity=1)`` queue."""

from __future__ import annotations

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpe_sys.hw.fifo import FifoServer

# (gap since the previous arrival, service time); zero gaps give simultaneous arrivals
times = st.floats(min_value=0.0, max_value=1000.0, allow_nan=False, allow_infinity=False)
requests = st.lists(st.tuples(st.one_of(st.just(0.0), times), st.one_of(st.just(0.0), times)),
                    min_size=1, max_size=40)


def simpy_finish_times(arrivals: list[float], services: list[float]) -> list[float]:
    """Finish time of each request served by a capacity-1 SimPy resource in arrival order."""
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    finish = [None] * len(arrivals)

    def customer(i: int):
        yield env.timeout(arrivals[i])
        with server.request() as req:
            yield req
            yield env.timeout(services[i])
        finish[i] = env.now

    for i in range(len(arrivals)):
        env.process(customer(i))
    env.run()
    return finish


def fifo_finish_times(arrivals: list[float], services: list[float]) -> tuple[list[float], FifoServer]:
    """Reserved finish time of each request booked on a FifoServer at its arrival, in a SimPy model."""
    env = simpy.Environment()
    server = FifoServer("link")
    finish = [None] * len(arrivals)

    def customer(i: int):
        yield env.timeout(arrivals[i])
        finish[i] = server.reserve(env.now, services[i], nbytes=i + 1)
        # (the caller then waits ``end - now``; that subtraction may round, the reservation does not)
        yield env.timeout(finish[i] - env.now)

    for i in range(len(arrivals)):
        env.process(customer(i))
    env.run()
    return finish, server


def cumulative(gaps: list[float]) -> list[float]:
    out, t = [], 0.0
    for g in gaps:
        t += g
        out.append(t)
    return out


@settings(max_examples=200, deadline=None)
@given(requests)
def test_fifo_server_matches_simpy_resource(reqs):
    arrivals = cumulative([g for g, _ in reqs])
    services = [s for _, s in reqs]
    expected = simpy_finish_times(arrivals, services)
    got, server = fifo_finish_times(arrivals, services)
    assert got == expected
    assert server.free_at_ns == max(expected)
    assert server.busy_ns == sum(services)
    n = len(reqs)
    assert server.served_bytes == n * (n + 1) // 2  # request i carried i + 1 bytes


def test_fifo_hand_worked_queue():
    # arrivals 0, 1, 10 with service 5, 2, 3: the second waits for the first (0..5, 5..7),
    # the third finds the server idle (10..13)
    server = FifoServer("x")
    assert server.reserve(0.0, 5.0) == 5.0
    assert server.reserve(1.0, 2.0) == 7.0
    assert server.reserve(10.0, 3.0) == 13.0
    assert server.busy_ns == 10.0
    assert simpy_finish_times([0.0, 1.0, 10.0], [5.0, 2.0, 3.0]) == [5.0, 7.0, 13.0]
