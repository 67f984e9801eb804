/**
 * @file memds_codes.h
 * SyncML status codes (SyncML Representation Protocol 1.2, section 10) and
 * DS alert codes (DS Protocol 1.2, section 8.3 and SAN sync types) as named
 * constants: the one place where these numbers are spelled out.
 */
#ifndef MEMDS_CODES_H
#define MEMDS_CODES_H

/* ---------------------------------------------------------------- statuses */
/* 1xx informational */
#define MEMDS_ST_IN_PROGRESS         101
/* 2xx success */
#define MEMDS_ST_OK                  200
#define MEMDS_ST_ITEM_ADDED          201
#define MEMDS_ST_ACCEPTED            202 /**< accepted for processing (async) */
#define MEMDS_ST_NON_AUTH_RESPONSE   203
#define MEMDS_ST_NO_CONTENT          204
#define MEMDS_ST_RESET_CONTENT       205
#define MEMDS_ST_PARTIAL_CONTENT     206
#define MEMDS_ST_CONFLICT_MERGED     207
#define MEMDS_ST_CONFLICT_CLIENT_WON 208
#define MEMDS_ST_CONFLICT_DUPLICATE  209
#define MEMDS_ST_DELETE_NO_ARCHIVE   210
#define MEMDS_ST_ITEM_NOT_DELETED    211 /**< item not found, nothing deleted */
#define MEMDS_ST_AUTH_ACCEPTED       212
#define MEMDS_ST_CHUNK_ACCEPTED      213
#define MEMDS_ST_OP_CANCELLED        214
#define MEMDS_ST_NOT_EXECUTED        215
#define MEMDS_ST_ATOMIC_ROLLBACK_OK  216
#define MEMDS_ST_RESULT_ALERT        221
#define MEMDS_ST_NEXT_MESSAGE        222
#define MEMDS_ST_ITEM_NOT_FOUND_HINT 223 /**< soft delete of unknown item */
#define MEMDS_ST_SUSPENDED_PREV      224
#define MEMDS_ST_DELETED_ON_DEVICE   225
/* 3xx redirection */
#define MEMDS_ST_MULTIPLE_CHOICES    300
#define MEMDS_ST_MOVED_PERMANENTLY   301
#define MEMDS_ST_FOUND               302
#define MEMDS_ST_SEE_OTHER           303
#define MEMDS_ST_NOT_MODIFIED        304
#define MEMDS_ST_USE_PROXY           305
/* 4xx originator errors */
#define MEMDS_ST_BAD_REQUEST         400
#define MEMDS_ST_INVALID_CREDENTIALS 401
#define MEMDS_ST_PAYMENT_NEEDED      402
#define MEMDS_ST_FORBIDDEN           403
#define MEMDS_ST_NOT_FOUND           404
#define MEMDS_ST_NOT_ALLOWED         405
#define MEMDS_ST_NOT_SUPPORTED       406 /**< optional feature not supported */
#define MEMDS_ST_MISSING_CREDENTIALS 407
#define MEMDS_ST_REQUEST_TIMEOUT     408
#define MEMDS_ST_CONFLICT            409
#define MEMDS_ST_GONE                410
#define MEMDS_ST_SIZE_REQUIRED       411
#define MEMDS_ST_INCOMPLETE_COMMAND  412
#define MEMDS_ST_ENTITY_TOO_LARGE    413
#define MEMDS_ST_URI_TOO_LONG        414
#define MEMDS_ST_UNSUPPORTED_MEDIA   415
#define MEMDS_ST_RANGE_UNSATISFIABLE 416
#define MEMDS_ST_RETRY_LATER         417
#define MEMDS_ST_ALREADY_EXISTS      418
#define MEMDS_ST_SERVER_DATA_WINS    419
#define MEMDS_ST_DEVICE_FULL         420
#define MEMDS_ST_UNKNOWN_SEARCH      421
#define MEMDS_ST_BAD_CGI_SCRIPT      422
#define MEMDS_ST_SOFT_DELETE_CONFLICT 423
#define MEMDS_ST_SIZE_MISMATCH       424
#define MEMDS_ST_PERMISSION_DENIED   425
#define MEMDS_ST_PARTIAL_ITEM_NOT_ACCEPTED 426
#define MEMDS_ST_ITEM_NOT_EMPTY      427
#define MEMDS_ST_MOVE_FAILED         428
/* 5xx recipient errors */
#define MEMDS_ST_COMMAND_FAILED      500
#define MEMDS_ST_NOT_IMPLEMENTED     501
#define MEMDS_ST_BAD_GATEWAY         502
#define MEMDS_ST_SERVICE_UNAVAILABLE 503
#define MEMDS_ST_GATEWAY_TIMEOUT     504
#define MEMDS_ST_DTD_VERSION         505
#define MEMDS_ST_PROCESSING_ERROR    506
#define MEMDS_ST_ATOMIC_FAILED       507
#define MEMDS_ST_REFRESH_REQUIRED    508
#define MEMDS_ST_RESERVED_509        509 /**< (reserved; used for unknown sync mode) */
#define MEMDS_ST_DATASTORE_FAILURE   510
#define MEMDS_ST_SERVER_FAILURE      511
#define MEMDS_ST_SYNC_FAILED         512
#define MEMDS_ST_PROTOCOL_VERSION    513
#define MEMDS_ST_OP_CANCELLED_FAIL   514
#define MEMDS_ST_ATOMIC_ROLLBACK_FAILED 516
#define MEMDS_ST_ATOMIC_TOO_LARGE    517

/** True for 2xx codes (the command or item succeeded). */
#define MEMDS_ST_IS_SUCCESS(c) ((c) >= 200 && (c) < 300)

/* ------------------------------------------------------------------ alerts */
#define MEMDS_ALERT_DISPLAY               100
#define MEMDS_ALERT_TWO_WAY               200
#define MEMDS_ALERT_SLOW                  201
#define MEMDS_ALERT_ONE_WAY_CLIENT        202
#define MEMDS_ALERT_REFRESH_CLIENT        203
#define MEMDS_ALERT_ONE_WAY_SERVER        204
#define MEMDS_ALERT_REFRESH_SERVER        205
/* server-alerted sync types (SAN) */
#define MEMDS_ALERT_TWO_WAY_BY_SERVER     206
#define MEMDS_ALERT_ONE_WAY_CLIENT_BY_SERVER 207
#define MEMDS_ALERT_REFRESH_CLIENT_BY_SERVER 208
#define MEMDS_ALERT_ONE_WAY_SERVER_BY_SERVER 209
#define MEMDS_ALERT_REFRESH_SERVER_BY_SERVER 210
/* special alerts */
#define MEMDS_ALERT_RESULT                221
#define MEMDS_ALERT_NEXT_MESSAGE          222
#define MEMDS_ALERT_NO_END_OF_DATA        223
#define MEMDS_ALERT_SUSPEND               224
#define MEMDS_ALERT_RESUME                225

/** True for the codes that start a sync of a datastore (200..205). */
#define MEMDS_ALERT_IS_SYNC(c) ((c) >= MEMDS_ALERT_TWO_WAY && (c) <= MEMDS_ALERT_REFRESH_SERVER)
/** True for the server-alerted sync types (206..210). */
#define MEMDS_ALERT_IS_SAN(c) ((c) >= MEMDS_ALERT_TWO_WAY_BY_SERVER && (c) <= MEMDS_ALERT_REFRESH_SERVER_BY_SERVER)

#endif /* MEMDS_CODES_H */
