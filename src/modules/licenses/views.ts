import type { Device, LicenseKey } from '../../db/schema/index.js';
import { toIso } from '../../lib/dates.js';
import { isActive } from './policy.js';
import type { DeviceView, LicenseView } from './schemas.js';

/** Response views of keys and devices: database rows → the contract's field names (v2). */

export type LicenseSummary = Omit<LicenseView, 'devices'>;

export function toLicenseView(key: LicenseKey, activations: number, now = Date.now()): LicenseSummary {
  return {
    id: key.id,
    key: key.key,
    productId: key.productId,
    maxActivations: key.maxActivations,
    activations,
    activated: isActive(key, now),
    expirationDate: toIso(key.expiresAt),
    metadata: key.metadata ?? null,
    allowedHosts: key.allowedHosts ?? null,
    licenseType: key.licenseType,
    blocked: key.blocked,
  };
}

export const toDeviceView = (device: Device): DeviceView => ({
  hostId: device.hostId,
  deviceTag: device.deviceTag,
  ipAddress: device.ipAddress,
  activationTime: device.activatedAt.toISOString(),
});
