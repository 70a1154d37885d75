"""Catalogue: public reads under /v1, staff CRUD under /admin/v1 (writes via the queue)."""

from __future__ import annotations

import uuid

import falcon

from api.openapi import doc
from api.resources.base import BaseResource, parse_uuid
from api.schemas.catalogue import (
    LocationIn,
    LocationOut,
    LocationPage,
    LocationPatch,
    ServiceIn,
    ServiceOut,
    ServicePage,
    ServicePatch,
    StylistIn,
    StylistOut,
    StylistPage,
    StylistPatch,
)
from api.schemas.common import PageQuery, patch_body
from api.validation import parse_query
from api.writes import submit_write
from salon import operations
from salon.catalogue import service as catalogue

# --- public ---------------------------------------------------------------------------------


class PublicLocations(BaseResource):
    @doc("Active locations", tag="catalogue", query=PageQuery, responses={200: LocationPage})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, PageQuery)
        with self.container.sessions() as s:
            items, total = catalogue.list_locations(
                s, biz=None, active_only=True, page=q.page, page_size=q.page_size
            )
        resp.media = self.page(items, total, q)


class PublicLocationServices(BaseResource):
    @doc(
        "Active services of a location",
        tag="catalogue",
        query=PageQuery,
        responses={200: ServicePage},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, location_id: str) -> None:
        q = parse_query(req, PageQuery)
        with self.container.sessions() as s:
            loc = catalogue.public_location(s, parse_uuid(location_id, "location"))
            items, total = catalogue.list_services(
                s,
                biz=None,
                location_id=loc.id,
                active_only=True,
                page=q.page,
                page_size=q.page_size,
            )
        resp.media = self.page(items, total, q)


class PublicLocationStylists(BaseResource):
    @doc(
        "Active stylists working at a location",
        tag="catalogue",
        query=PageQuery,
        responses={200: StylistPage},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, location_id: str) -> None:
        q = parse_query(req, PageQuery)
        with self.container.sessions() as s:
            loc = catalogue.public_location(s, parse_uuid(location_id, "location"))
            items, total = catalogue.list_stylists(
                s,
                biz=None,
                location_id=loc.id,
                active_only=True,
                page=q.page,
                page_size=q.page_size,
            )
        resp.media = self.page(items, total, q)


# --- admin ----------------------------------------------------------------------------------


class AdminLocations(BaseResource):
    @doc(
        "Locations of the caller's brand",
        tag="admin",
        query=PageQuery,
        responses={200: LocationPage},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, PageQuery)
        with self.container.sessions() as s:
            items, total = catalogue.list_locations(
                s,
                biz=req.context.principal.biz,
                active_only=False,
                page=q.page,
                page_size=q.page_size,
            )
        resp.media = self.page(items, total, q)

    @doc(
        "Create a location",
        tag="admin",
        body=LocationIn,
        responses={201: LocationOut},
        write=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req, LocationIn)
        submit_write(
            req, resp, self.container, operations.LOCATION_CREATE, body.model_dump(mode="json")
        )


class AdminLocation(BaseResource):
    @doc("One location", tag="admin", responses={200: LocationOut})
    def on_get(self, req: falcon.Request, resp: falcon.Response, location_id: str) -> None:
        with self.container.sessions() as s:
            resp.media = catalogue.get_location(
                s, req.context.principal, parse_uuid(location_id, "location")
            )

    @doc(
        "Change a location",
        tag="admin",
        body=LocationPatch,
        responses={200: LocationOut},
        write=True,
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, location_id: str) -> None:
        body = self.body(req, LocationPatch)
        submit_write(
            req,
            resp,
            self.container,
            operations.LOCATION_UPDATE,
            patch_body(body),
            {"location_id": str(parse_uuid(location_id, "location"))},
        )


class StylistQuery(PageQuery):
    location_id: uuid.UUID | None = None


class AdminStylists(BaseResource):
    @doc(
        "Stylists of the caller's brand",
        tag="admin",
        query=StylistQuery,
        responses={200: StylistPage},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, StylistQuery)
        with self.container.sessions() as s:
            items, total = catalogue.list_stylists(
                s,
                biz=req.context.principal.biz,
                location_id=q.location_id,
                active_only=False,
                page=q.page,
                page_size=q.page_size,
            )
        resp.media = self.page(items, total, q)

    @doc(
        "Create a stylist",
        tag="admin",
        body=StylistIn,
        responses={201: StylistOut},
        write=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req, StylistIn)
        submit_write(
            req, resp, self.container, operations.STYLIST_CREATE, body.model_dump(mode="json")
        )


class AdminStylist(BaseResource):
    @doc("One stylist", tag="admin", responses={200: StylistOut})
    def on_get(self, req: falcon.Request, resp: falcon.Response, stylist_id: str) -> None:
        with self.container.sessions() as s:
            resp.media = catalogue.get_stylist(
                s, req.context.principal, parse_uuid(stylist_id, "stylist")
            )

    @doc(
        "Change a stylist",
        tag="admin",
        body=StylistPatch,
        responses={200: StylistOut},
        write=True,
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, stylist_id: str) -> None:
        body = self.body(req, StylistPatch)
        submit_write(
            req,
            resp,
            self.container,
            operations.STYLIST_UPDATE,
            patch_body(body),
            {"stylist_id": str(parse_uuid(stylist_id, "stylist"))},
        )


class ServiceQuery(PageQuery):
    location_id: uuid.UUID | None = None


class AdminServices(BaseResource):
    @doc(
        "Services of the caller's brand",
        tag="admin",
        query=ServiceQuery,
        responses={200: ServicePage},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, ServiceQuery)
        with self.container.sessions() as s:
            items, total = catalogue.list_services(
                s,
                biz=req.context.principal.biz,
                location_id=q.location_id,
                active_only=False,
                page=q.page,
                page_size=q.page_size,
            )
        resp.media = self.page(items, total, q)

    @doc(
        "Create a service",
        tag="admin",
        body=ServiceIn,
        responses={201: ServiceOut},
        write=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self.body(req, ServiceIn)
        submit_write(
            req, resp, self.container, operations.SERVICE_CREATE, body.model_dump(mode="json")
        )


class AdminService(BaseResource):
    @doc("One service", tag="admin", responses={200: ServiceOut})
    def on_get(self, req: falcon.Request, resp: falcon.Response, service_id: str) -> None:
        with self.container.sessions() as s:
            resp.media = catalogue.get_service(
                s, req.context.principal, parse_uuid(service_id, "service")
            )

    @doc(
        "Change a service",
        tag="admin",
        body=ServicePatch,
        responses={200: ServiceOut},
        write=True,
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, service_id: str) -> None:
        body = self.body(req, ServicePatch)
        submit_write(
            req,
            resp,
            self.container,
            operations.SERVICE_UPDATE,
            patch_body(body),
            {"service_id": str(parse_uuid(service_id, "service"))},
        )
