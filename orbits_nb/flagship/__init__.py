"""The flagship scenario of the seed, importable: DeployBackend, its frontend sibling
sharing one account through ``BaseWorkflow.define_creation``, and a tenant fleet
(``Fleet``: nested workflows; ``TenantFleet``: one agent per tenant, as desired state).

The runbooks ``notebooks/deploy_backend.ipynb`` and ``notebooks/fleet.ipynb`` use these
classes; being importable, their runs can also be resumed from the CLI.
"""

from __future__ import annotations

from orbits_nb.flagship.backend import BaseWorkflow, DeployBackend, DeployFrontend
from orbits_nb.flagship.fleet import Fleet, FleetFailed, tenant_step
from orbits_nb.flagship.tenants import TenantBackend, TenantFleet

__all__ = ["BaseWorkflow", "DeployBackend", "DeployFrontend", "Fleet", "FleetFailed",
           "TenantBackend", "TenantFleet", "tenant_step"]
