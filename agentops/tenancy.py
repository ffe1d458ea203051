"""Structural tenant scoping.

Every tenant-owned model inherits ``TenantOwned``. Its default manager hands out querysets
that refuse to run until they are scoped: ``Model.objects.for_tenant(tenant)`` filters by
tenant, a related manager (``ticket.comments``) is scoped through its parent, and
``Model.objects.unscoped(reason)`` is the one explicit way out (admin, maintenance commands,
benchmarks). An unscoped query raises ``UnscopedQueryError`` instead of leaking rows of
another tenant.
"""

from __future__ import annotations

from django.db import models


class UnscopedQueryError(RuntimeError):
    """A tenant-owned table was queried without a tenant filter."""


class TenantQuerySet(models.QuerySet):
    _tenant_scoped = False

    def _clone(self):
        clone = super()._clone()
        clone._tenant_scoped = self._tenant_scoped
        return clone

    def for_tenant(self, tenant) -> TenantQuerySet:
        if tenant is None:
            raise UnscopedQueryError(f"{self.model.__name__}.for_tenant() needs a tenant, got None")
        qs = self.filter(tenant=tenant)
        qs._tenant_scoped = True
        return qs

    def unscoped(self, reason: str) -> TenantQuerySet:
        """Deliberately cross-tenant access; ``reason`` documents why at the call site."""
        if not reason:
            raise ValueError("unscoped() needs a reason")
        qs = self._clone()
        qs._tenant_scoped = True
        return qs

    def _check_scoped(self) -> None:
        # A related manager (ticket.comments.all()) carries its parent as a hint: the parent
        # was itself loaded through a scoped query, so the rows are the parent's tenant's.
        if self._tenant_scoped or self._hints.get("instance") is not None or self.query.is_empty():
            return
        raise UnscopedQueryError(
            f"Query on tenant-owned {self.model.__name__} without a tenant filter: use "
            f"{self.model.__name__}.objects.for_tenant(tenant) or .unscoped(reason)."
        )

    def _fetch_all(self):
        if self._result_cache is None:
            self._check_scoped()
        super()._fetch_all()

    def iterator(self, *args, **kwargs):
        self._check_scoped()
        return super().iterator(*args, **kwargs)

    def count(self):
        if self._result_cache is None:
            self._check_scoped()
        return super().count()

    def exists(self):
        if self._result_cache is None:
            self._check_scoped()
        return super().exists()

    def aggregate(self, *args, **kwargs):
        self._check_scoped()
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs):
        self._check_scoped()
        return super().update(**kwargs)

    def delete(self):
        self._check_scoped()
        return super().delete()


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    pass


class TenantOwned(models.Model):
    """Abstract base of every tenant-owned model: a tenant column and the scoped manager."""

    tenant = models.ForeignKey("agentops.Tenant", on_delete=models.CASCADE, related_name="+")

    objects = TenantManager()

    class Meta:
        abstract = True
