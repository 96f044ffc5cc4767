"""One method per API endpoint. Shared by the async client and (through it) the sync facade."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

from ._errors import BadResponse
from ._models import Account, ApiToken, Connector, Node, Route, Scope, Webhook
from ._sse import ServerSentEvent


class Endpoints:
    """Endpoint methods; the transport-level primitives come from AsyncMeshApi."""

    async def account(self) -> str:
        raise NotImplementedError

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def list_all(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        raise NotImplementedError

    def stream_events(
        self, path: str, last_event_id: str | None = None, *, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[ServerSentEvent]:
        raise NotImplementedError

    async def _acct(self, suffix: str) -> str:
        return f"accounts/{await self.account()}/{suffix}"

    # -- accounts --------------------------------------------------------------------------

    async def list_accounts(self) -> list[Account]:
        return cast(list[Account], await self.list_all("accounts"))

    # -- nodes (warp_connector) ------------------------------------------------------------

    async def create_node(self, name: str, *, ha: bool = True) -> Node:
        return cast(
            Node, await self.call("POST", await self._acct("warp_connector"), json={"name": name, "ha": ha})
        )

    async def list_nodes(self, *, name: str | None = None, include_deleted: bool = False) -> list[Node]:
        params = {"name": name, "is_deleted": None if include_deleted else "false"}
        return cast(list[Node], await self.list_all(await self._acct("warp_connector"), params))

    async def get_node(self, node_id: str) -> Node:
        return cast(Node, await self.call("GET", await self._acct(f"warp_connector/{node_id}")))

    async def patch_node(self, node_id: str, **fields: Any) -> Node:
        return cast(
            Node, await self.call("PATCH", await self._acct(f"warp_connector/{node_id}"), json=fields)
        )

    async def delete_node(self, node_id: str) -> Node:
        return cast(Node, await self.call("DELETE", await self._acct(f"warp_connector/{node_id}")))

    async def node_token(self, node_id: str) -> str:
        result = await self.call("GET", await self._acct(f"warp_connector/{node_id}/token"))
        return str(result)

    # -- replicas --------------------------------------------------------------------------

    async def connections(self, node_id: str) -> list[Connector]:
        result = await self.call("GET", await self._acct(f"warp_connector/{node_id}/connections"))
        if not isinstance(result, list):
            raise BadResponse(f"GET connections of {node_id}: result is not a list")
        return cast(list[Connector], result)

    async def connector(self, node_id: str, replica_id: str) -> Connector:
        return cast(
            Connector,
            await self.call("GET", await self._acct(f"warp_connector/{node_id}/connectors/{replica_id}")),
        )

    async def failover(self, node_id: str, replica_id: str) -> Node:
        """Promote `replica_id` to active (manual failover); returns the node."""
        path = await self._acct(f"warp_connector/{node_id}/failover")
        return cast(Node, await self.call("PUT", path, json={"client_id": replica_id}))

    async def events(
        self, node_id: str, last_event_id: str | None = None, *, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[ServerSentEvent]:
        """The node's event stream (embedded control plane extension), resumed after `last_event_id`.

        Event ids are the node's generations; `event.json()` is the event's data object.
        """
        path = await self._acct(f"warp_connector/{node_id}/events")
        async for event in self.stream_events(path, last_event_id, on_open=on_open):
            yield event

    # -- routes (teamnet) ------------------------------------------------------------------

    async def list_routes(
        self, *, tunnel_id: str | None = None, include_deleted: bool = False
    ) -> list[Route]:
        params = {"tunnel_id": tunnel_id, "is_deleted": None if include_deleted else "false"}
        return cast(list[Route], await self.list_all(await self._acct("teamnet/routes"), params))

    async def create_route(self, network: str, tunnel_id: str, *, comment: str | None = None) -> Route:
        body: dict[str, Any] = {"network": network, "tunnel_id": tunnel_id}
        if comment is not None:
            body["comment"] = comment
        return cast(Route, await self.call("POST", await self._acct("teamnet/routes"), json=body))

    async def get_route(self, route_id: str) -> Route:
        return cast(Route, await self.call("GET", await self._acct(f"teamnet/routes/{route_id}")))

    async def patch_route(self, route_id: str, **fields: Any) -> Route:
        return cast(
            Route, await self.call("PATCH", await self._acct(f"teamnet/routes/{route_id}"), json=fields)
        )

    async def delete_route(self, route_id: str) -> Route:
        return cast(Route, await self.call("DELETE", await self._acct(f"teamnet/routes/{route_id}")))

    # -- API tokens (extension) ------------------------------------------------------------

    async def create_token(self, name: str, scope: Scope = "read") -> ApiToken:
        body = {"name": name, "scope": scope}
        return cast(ApiToken, await self.call("POST", await self._acct("tokens"), json=body))

    async def list_tokens(self) -> list[ApiToken]:
        return cast(list[ApiToken], await self.list_all(await self._acct("tokens")))

    async def delete_token(self, token_id: str) -> Any:
        return await self.call("DELETE", await self._acct(f"tokens/{token_id}"))

    # -- notification webhooks -------------------------------------------------------------

    async def create_webhook(self, name: str, url: str, secret: str) -> Webhook:
        path = await self._acct("alerting/v3/destinations/webhooks")
        return cast(Webhook, await self.call("POST", path, json={"name": name, "url": url, "secret": secret}))

    async def list_webhooks(self) -> list[Webhook]:
        return cast(list[Webhook], await self.list_all(await self._acct("alerting/v3/destinations/webhooks")))

    async def delete_webhook(self, webhook_id: str) -> Any:
        return await self.call("DELETE", await self._acct(f"alerting/v3/destinations/webhooks/{webhook_id}"))
