"""A molecules run started from Python stores the arguments that rebuild its task (resume never unpickles)."""

import json


def test_a_task_built_in_python_is_rebuilt_from_its_instance_arguments(domain):
    task = domain.load({"target": "drd2", "start": "OCC", "exhaustiveness": 2, "docking_time_limit": 30,
                        "mw_max": 400, "no_pains": True, "target_score": 9})
    args = domain.instance_args(task)
    assert json.loads(json.dumps(args)) == args  # stored in run.json as is
    assert domain.load(args) == task
