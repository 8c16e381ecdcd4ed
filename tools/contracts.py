"""An import-linter contract of our own: no module imports itself through other modules.

import-linter's built-in contracts speak of layers and packages; a cycle between two
modules of one package (even one hidden in a function-level import) is what breaks at run
time, so this contract looks at every import between modules, wherever it is written.
"""

from __future__ import annotations

from collections.abc import Iterator

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class AcyclicModulesContract(Contract):
    type_name = "acyclic_modules"

    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        roots = tuple(self.packages)  # type: ignore[call-overload]
        modules = sorted(m for m in graph.modules if m.startswith(roots))
        edges = {
            m: sorted(
                i
                for i in graph.find_modules_directly_imported_by(m)
                if i in graph.modules and i.startswith(roots) and i != m
            )
            for m in modules
        }
        cycles = [sorted(c) for c in strongly_connected(modules, edges) if len(c) > 1]
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles, "graph": graph})

    def render_broken_contract(self, check: ContractCheck) -> None:
        graph: ImportGraph = check.metadata["graph"]
        for cycle in check.metadata["cycles"]:
            output.print_error(f"Import cycle among {', '.join(cycle)}:", bold=True)
            members = set(cycle)
            for module in cycle:
                for imported in sorted(graph.find_modules_directly_imported_by(module)):
                    if imported in members:
                        for detail in graph.get_import_details(importer=module, imported=imported):
                            output.print_error(
                                f"  {module} -> {imported} (l. {detail['line_number']})"
                            )
            output.new_line()


def strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> Iterator[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, [])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    yield component
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(edges.get(child, []))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
