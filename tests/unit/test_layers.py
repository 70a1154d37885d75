"""No import circle anywhere in the project: each module reaches others one way only
(the layer contracts themselves are in setup.cfg, checked by `make lint`)."""

from __future__ import annotations

import grimp

PACKAGES = ("api", "workers", "scheduler_jobs", "salon", "models")


def test_no_module_of_the_project_imports_itself_through_others():
    graph = grimp.build_graph(*PACKAGES)
    circles = [
        (module, imported)
        for module in sorted(graph.modules)
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    ]
    assert circles == []


def test_services_reach_the_process_only_through_ports():
    graph = grimp.build_graph(*PACKAGES)
    importers = graph.find_modules_that_directly_import("salon.bootstrap")
    assert importers <= {
        module
        for module in graph.modules
        if module.split(".")[0] in ("api", "workers", "scheduler_jobs")
        or module in ("salon.cli", "salon.dev")
    }, importers
