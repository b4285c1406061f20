"""The fake Microsoft login service: OIDC discovery, the v2 token endpoint, access tokens.

What MSAL (ConfidentialClientApplication, ``instance_discovery=False``) does against an
authority ``https://127.0.0.1:PORT/<tenant>``: GET
``<authority>/v2.0/.well-known/openid-configuration``, then POST the client-credentials
form to the ``token_endpoint`` it names, with ``client_secret`` or a ``client_assertion``
(JWT, RS256 with ``x5t`` or PS256 with ``x5t#S256``, signed by the app's certificate key).

Access tokens are opaque random strings (Microsoft says not to parse Graph tokens,
graph-facts §0.2) mapped server-side to (tenant, app, expiry, revocation generation).
Errors use the AAD shape with the AADSTS numbers a real tenant returns.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import TYPE_CHECKING

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .core import SimCore
from .responses import Response, aad_error
from .role_catalogue import role_names
from .tokens import TokenStore

if TYPE_CHECKING:  # pragma: no cover
    from .tenant import SimTenant

__all__ = ["GRAPH_SCOPE", "TokenStore", "openid_configuration", "token_endpoint"]

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_CLOCK_SKEW = 300.0


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def openid_configuration(sim: SimCore, segment: str) -> Response:
    tenant = sim.find_tenant(segment)
    if tenant is None:
        return _unknown_tenant(segment)
    base = f"{sim.base_url}/{tenant.tenant_id}"
    body = {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{sim.base_url}/{tenant.tenant_id}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{sim.base_url}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }
    return Response(200, orjson.dumps(body), {}, "application/json; charset=utf-8", tenant.tenant_id)


def _unknown_tenant(segment: str) -> Response:
    return aad_error(
        400, "invalid_tenant", 90002,
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud. Check with your subscription administrator, this may happen if there are no "
        "active subscriptions for the tenant.",
    )


def token_endpoint(sim: SimCore, segment: str, form: dict[str, str], basic: tuple[str, str] | None) -> Response:
    """Client-credentials grant.  ``form`` is the decoded body; ``basic`` = Basic auth pair."""
    tenant = sim.find_tenant(segment)
    if tenant is None:
        return _unknown_tenant(segment)
    resp = _token(sim, tenant, form, basic)
    resp.tenant_id = tenant.tenant_id
    return resp


def _token(sim: SimCore, tenant: "SimTenant", form: dict[str, str], basic: tuple[str, str] | None) -> Response:
    grant = form.get("grant_type")
    if not grant:
        return aad_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
    if grant != "client_credentials":
        return aad_error(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'.")
    client_id = form.get("client_id") or (basic[0] if basic else None)
    if not client_id:
        return aad_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
    if client_id != tenant.client_id:
        return aad_error(
            400, "unauthorized_client", 700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant.domain}'. This can "
            "happen if the application has not been installed by the administrator of the tenant or consented to "
            "by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
        )
    scope = form.get("scope")
    if scope is None:
        return aad_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
    if scope.strip() != GRAPH_SCOPE:
        return aad_error(
            400, "invalid_scope", 70011,
            f"The provided request must include a 'scope' input parameter. The provided value for the input "
            f"parameter 'scope' is not valid. The scope {scope} is not valid. For the client credentials flow the "
            f"scope must be {GRAPH_SCOPE}.",
        )
    assertion = form.get("client_assertion")
    secret = form.get("client_secret") or (basic[1] if basic else None)
    if assertion is not None:
        if form.get("client_assertion_type") != _JWT_BEARER:
            return aad_error(400, "invalid_request", 50027, "Invalid client_assertion_type; expected "
                             f"'{_JWT_BEARER}'.")
        problem = _check_assertion(sim, tenant, assertion)
        if problem is not None:
            return problem
    elif secret is not None:
        if not hmac.compare_digest(secret.encode(), tenant.client_secret.encode()):
            return aad_error(
                401, "invalid_client", 7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                f"value, not the client secret ID, for a secret added to app '{tenant.client_id}'.",
            )
    else:
        return aad_error(401, "invalid_client", 7000218,
                         "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
    lifetime = float(sim.token_lifetime)
    roles = sorted(tenant.permissions) if tenant.permissions is not None else role_names()
    token = sim.tokens.issue(tenant, lifetime, sim.now(), roles=roles)
    body = {"token_type": "Bearer", "expires_in": int(lifetime), "ext_expires_in": int(lifetime), "access_token": token}
    return Response(200, orjson.dumps(body), {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
                    "application/json; charset=utf-8")


def _check_assertion(sim: SimCore, tenant: "SimTenant", assertion: str) -> Response | None:
    """Verify a client-assertion JWT against the tenant's registered certificate."""
    try:
        h64, p64, s64 = assertion.split(".")
        header = orjson.loads(_b64url(h64))
        claims = orjson.loads(_b64url(p64))
        signature = _b64url(s64)
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("not objects")
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return aad_error(400, "invalid_request", 50027, "JWT token is invalid or malformed.")
    cert = tenant.certificate
    x5t256, x5t = header.get("x5t#S256"), header.get("x5t")
    try:
        presented = _b64url(x5t256) if x5t256 else (_b64url(x5t) if x5t else b"")
    except (ValueError, binascii.Error):
        presented = b""
    if cert is None or presented not in (cert.sha256 if x5t256 else cert.sha1,):
        return aad_error(
            401, "invalid_client", 700027,
            "The certificate with identifier used to sign the client assertion is not registered on application. "
            f"[Reason - The key was not found., Thumbprint of key used by client: '{presented.hex().upper()}']",
        )
    alg = header.get("alg")
    signing_input = f"{h64}.{p64}".encode("ascii")
    try:
        if alg == "RS256":
            cert.public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "PS256":
            cert.public_key.verify(
                signature, signing_input,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO), hashes.SHA256(),
            )
        else:
            return aad_error(401, "invalid_client", 5002738, f"Client assertion algorithm '{alg}' is not supported.")
    except (InvalidSignature, TypeError, ValueError):
        return aad_error(401, "invalid_client", 7000274, "Client assertion failed signature validation.")
    if claims.get("iss") != tenant.client_id or claims.get("sub") != tenant.client_id:
        return aad_error(401, "invalid_client", 700021,
                         "Client assertion application identifier doesn't match 'client_id' parameter.")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    accepted = {tenant.tenant_id.lower(), tenant.domain.lower()}
    if not any(isinstance(a, str) and _aud_ok(a, accepted) for a in auds):
        return aad_error(401, "invalid_client", 700212,
                         f"Client assertion audience claim does not match the token endpoint: '{aud}'.")
    # Wall clock, not sim.now(): the client signs with real time, and tests that move the
    # simulator's clock (to expire tokens or reveal late events) must not break assertions.
    now = time.time()
    try:
        exp = float(claims["exp"])
        nbf = float(claims.get("nbf", claims.get("iat", now)))
    except (KeyError, TypeError, ValueError):
        return aad_error(400, "invalid_request", 50027, "JWT token is invalid or malformed: exp is missing.")
    if exp < now - _CLOCK_SKEW or nbf > now + _CLOCK_SKEW:
        return aad_error(401, "invalid_client", 700024, "Client assertion is not within its valid time range.")
    return None


def _aud_ok(aud: str, tenant_names: set[str]) -> bool:
    """Loose audience check: a token endpoint URL (or issuer) naming this tenant."""
    parts = aud.lower().rstrip("/").split("/")
    return any(p in tenant_names for p in parts) and ("token" in parts or parts[-1] == "v2.0")
